#!/usr/bin/env bash
# DNS benchmark: outpost and Knot serving the same catalog (500 services x 5 instances on
# 100 nodes, `gen.py large`) in one run of the peer-benchmark harness (dnsperf, pinned CPUs,
# interleaved rounds), then start-up to first answer for both.
#
# usage: benches/dns/bench.sh HARNESS_DNS_DIR
#   HARNESS_DNS_DIR: the harness's dns folder (gen.py, serve.sh, run_all.sh, bench.sh).
# Env: REPS [3], DURATION [10], SERVERS ["ext knot"].
# outpost runs with `udp_answer_limit: 8` so that, like Knot, it returns all 5 instances to
# dnsperf's queries (which carry no EDNS); Consul's default of 3 would make its replies smaller.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
H="$(cd "${1:?usage: bench.sh HARNESS_DNS_DIR}" && pwd)"
(cd "$ROOT" && cargo build --release --locked)
BIN="$ROOT/target/release/outpost"
[ -f "$H/data/large/expected.txt" ] || (cd "$H" && python3 gen.py large)
export EXT_CMD="$BIN agent -dev -config-dir {data}/consul.d -config-file $HERE/outpost-bench.json -dns-port {port} -http-port -1 -client {addr}"
export EXT_PORT=15360
OUT="$H/results/outpost-$(date -u +%Y%m%dT%H%M%SZ)"
(cd "$H" && CATALOGS=large SERVERS="${SERVERS:-ext knot}" REPS="${REPS:-3}" DURATION="${DURATION:-10}" \
  OUT="$OUT" RESULTS_MD="$OUT/summary.md" ./run_all.sh)
echo "== start-up to first answer (large catalog)"
python3 "$HERE/startup.py" 9 15361 node-000.node.consul -- \
  "$BIN" agent -dev -config-dir "$H/data/large/consul.d" -dns-port 15361 -http-port -1
cat >"$OUT/knot-startup.conf" <<KNOT
server:
    rundir: "$OUT"
    listen: 127.0.0.1@15362
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$OUT"
template:
  - id: default
    storage: "$H/data/large/zone"
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: consul
    file: consul.zone
KNOT
echo -n "knot: "
python3 "$HERE/startup.py" 9 15362 node-000.node.consul -- knotd -c "$OUT/knot-startup.conf"
echo "results: $OUT/summary.md"
