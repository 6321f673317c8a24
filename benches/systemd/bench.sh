#!/usr/bin/env bash
# Exec to READY=1 of the release build (ready.py), median of N starts, in two set-ups: the
# unit's (a bootstrap server with a data dir, kept between starts as on a box) and `-dev`.
# Ports are loopback and kernel-chosen, so nothing else on the machine is disturbed.
#
# usage: benches/systemd/bench.sh     Env: N [20], CARGO_TARGET_DIR [./target]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
cargo build --release --locked --bin outpost
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/outpost"
N="${N:-20}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/conf" "$WORK/data"
echo '{"service": {"name": "web", "port": 80}}' > "$WORK/conf/web.json"
PORTS=(-bind 127.0.0.1 -client 127.0.0.1 -dns-port 0 -http-port 0 -serf-lan-port 0 -server-port 0)
echo "== the unit's set-up: -server -bootstrap -data-dir -config-dir"
python3 "$HERE/ready.py" "$N" -- "$BIN" agent -server -bootstrap -data-dir "$WORK/data" \
  -config-dir "$WORK/conf" "${PORTS[@]}"
echo "== -dev"
python3 "$HERE/ready.py" "$N" -- "$BIN" agent -dev "${PORTS[@]}" -https-port -1
