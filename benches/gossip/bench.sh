#!/usr/bin/env bash
# Gossip benchmark. 1. The simulator (examples/gossip_sim.rs): time until every member sees
# a crash (p50/p99 over seeds) and gossip bytes per second per member, for 5, 50 and 500
# members. 2. Real agents on loopback (detect.py): how long until all the others see a
# `kill -9`ed agent as failed, for 5 agents, ROUNDS kills.
#
# usage: benches/gossip/bench.sh     Env: ROUNDS [10], AGENTS [5], CARGO_TARGET_DIR [./target]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
cargo build --release --locked --no-default-features --bin outpost --example gossip_sim
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
echo "== simulator"
"$TARGET/release/examples/gossip_sim"
echo "== real agents on loopback"
python3 "$HERE/detect.py" "$TARGET/release/outpost" "${AGENTS:-5}" "${ROUNDS:-10}"
