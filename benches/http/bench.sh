#!/usr/bin/env bash
# HTTP benchmark: outpost's API against a minimal hyper server on the same stack
# (examples/hyper_peer.rs) in one run, on the same machine.
#
#  1. req/s and p99 of `GET /v1/catalog/service/web` and `GET /v1/health/service/web?passing`
#     (web has INSTANCES instances, so the answers have a realistic size; the peer serves
#     outpost's own replies, captured with curl, byte for byte): wrk --latency, each server
#     pinned to CPU 0 and wrk to CPU 1, CONNS connection counts, REPS interleaved rounds of
#     DURATION seconds; cells are medians.
#  2. RSS with WATCHERS concurrent blocking queries (`GET /v1/kv/bench?index=<current>&wait=5m`,
#     held by the peer too) against a fresh server each: KiB per idle watcher, that they are
#     really held (ss), and for outpost that one write returns all of them (watchers.py).
#
# usage: benches/http/bench.sh            (about 3 minutes after the release build)
# Env: DURATION [5], REPS [3], CONNS ["1 64"], WATCHERS ["1000 10000"], INSTANCES [5],
#      OUTPOST_PORT [18500], PEER_PORT [18501], CARGO_TARGET_DIR [./target].
# Needs: cargo, wrk, taskset (util-linux), ss (iproute2), curl, python3; 2 CPUs.
# Prints a markdown table; raw wrk output and logs stay in the printed results directory.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DURATION="${DURATION:-5}"
REPS="${REPS:-3}"
CONNS="${CONNS:-1 64}"
WATCHERS="${WATCHERS:-1000 10000}"
INSTANCES="${INSTANCES:-5}"
OUTPOST_PORT="${OUTPOST_PORT:-18500}"
PEER_PORT="${PEER_PORT:-18501}"
SERVER_CPU=0
LOAD_CPU=1
PATHS=("/v1/catalog/service/web" "/v1/health/service/web?passing")

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench.sh: needs $1 (Debian package $2)" >&2; exit 1; }; }
need wrk wrk
need taskset util-linux
need ss iproute2
need curl curl
need python3 python3
need cargo "rustup's cargo"
[ "$(nproc)" -ge 2 ] || { echo "bench.sh: needs 2 CPUs (server on CPU $SERVER_CPU, load on CPU $LOAD_CPU)" >&2; exit 1; }

max_watchers=0
for n in $WATCHERS; do [ "$n" -gt "$max_watchers" ] && max_watchers=$n; done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((max_watchers + 1024)) ]; then
  echo "bench.sh: the descriptor limit $(ulimit -n) is too low for $max_watchers watchers; raise the hard limit (ulimit -Hn)" >&2
  exit 1
fi

(cd "$ROOT" && cargo build --release --locked --bin outpost --example hyper_peer)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
BIN="$TARGET/release/outpost"
PEER="$TARGET/release/examples/hyper_peer"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/outpost-http-bench.XXXXXX")"
echo "results: $OUT" >&2

OUTPOST_PID=""
PEER_PID=""
stop() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() { stop "$OUTPOST_PID"; stop "$PEER_PID"; }
trap cleanup EXIT

# wait_http PORT PATH: until it answers 200 (10 s).
wait_http() {
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2" || true)" = 200 ] && return 0
    sleep 0.1
  done
  echo "bench.sh: nothing answered 200 on 127.0.0.1:$1$2; logs in $OUT" >&2
  exit 1
}

put() {
  local got
  got="$(curl -s -X PUT --data-binary "$2" "http://127.0.0.1:$OUTPOST_PORT$1")"
  [ "$got" = true ] || { echo "bench.sh: PUT $1 answered '$got'" >&2; exit 1; }
}

# A fresh outpost: the -dev agent (its own `web` on port 80) plus INSTANCES-1 more `web`
# instances on other nodes, each with a passing check, and the KV key the watchers watch.
start_outpost() {
  stop "$OUTPOST_PID"
  taskset -c "$SERVER_CPU" "$BIN" agent -dev -dns-port -1 -http-port "$OUTPOST_PORT" -client 127.0.0.1 \
    2>>"$OUT/outpost.log" &
  OUTPOST_PID=$!
  wait_http "$OUTPOST_PORT" /v1/status/leader
  for i in $(seq 2 "$INSTANCES"); do
    put /v1/catalog/register "{\"Node\": \"web-node-$i\", \"Address\": \"10.0.0.$i\",
      \"NodeMeta\": {\"rack\": \"r$i\"},
      \"Service\": {\"ID\": \"web-$i\", \"Service\": \"web\", \"Tags\": [\"rails\", \"v2\"], \"Port\": 8080,
                  \"Meta\": {\"version\": \"2.$i\"}},
      \"Checks\": [{\"CheckID\": \"service:web-$i\", \"Name\": \"web alive\", \"Status\": \"passing\",
                    \"ServiceID\": \"web-$i\", \"Output\": \"HTTP GET http://10.0.0.$i:8080/health: 200 OK\"}]}"
  done
  put /v1/kv/bench "v0"
}

start_peer() {
  stop "$PEER_PID"
  taskset -c "$SERVER_CPU" "$PEER" --listen "127.0.0.1:$PEER_PORT" \
    --body "/v1/catalog/service/web=$OUT/catalog.json" \
    --body "/v1/health/service/web=$OUT/health.json" \
    --body "/v1/kv/bench=$OUT/kv.json" \
    --body "$OUT/catalog.json" 2>>"$OUT/peer.log" &
  PEER_PID=$!
  wait_http "$PEER_PORT" /v1/kv/bench
}

start_outpost
n_web="$(curl -s "http://127.0.0.1:$OUTPOST_PORT/v1/catalog/service/web" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
[ "$n_web" = "$INSTANCES" ] || { echo "bench.sh: web has $n_web instances, expected $INSTANCES" >&2; exit 1; }
curl -s -o "$OUT/catalog.json" "http://127.0.0.1:$OUTPOST_PORT/v1/catalog/service/web"
curl -s -o "$OUT/health.json" "http://127.0.0.1:$OUTPOST_PORT/v1/health/service/web?passing"
curl -s -o "$OUT/kv.json" "http://127.0.0.1:$OUTPOST_PORT/v1/kv/bench"
start_peer

# Both servers must send the same bytes: same body size, same header size.
: >"$OUT/sizes.tsv"
for p in "${PATHS[@]}"; do
  for s in outpost peer; do
    port=$OUTPOST_PORT; [ $s = peer ] && port=$PEER_PORT
    printf '%s\t%s\t%s\n' "$s" "$p" "$(curl -s -o /dev/null -w '%{http_code}\t%{size_download}\t%{size_header}' "http://127.0.0.1:$port$p")" >>"$OUT/sizes.tsv"
  done
done
python3 - "$OUT/sizes.tsv" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
by = {}
for server, path, code, body, head in rows:
    if code != "200":
        sys.exit(f"bench.sh: {server} answered {code} to {path}")
    by.setdefault(path, {})[server] = (int(body), int(head))
for path, s in by.items():
    (ob, oh), (pb, ph) = s["outpost"], s["peer"]
    if ob != pb or abs(oh - ph) > 8:
        sys.exit(f"bench.sh: {path}: outpost sends {ob}+{oh} bytes (body+headers), the peer {pb}+{ph}")
PY

# 1. Throughput and latency, interleaved: each round runs every cell, alternating which
#    server goes first.
echo "server	path	conns	rep	rps	p99_ms	non2xx	errors" >"$OUT/wrk.tsv"
for rep in $(seq "$REPS"); do
  order="outpost peer"; [ $((rep % 2)) = 0 ] && order="peer outpost"
  for c in $CONNS; do
    for p in "${PATHS[@]}"; do
      for s in $order; do
        port=$OUTPOST_PORT; [ $s = peer ] && port=$PEER_PORT
        f="$OUT/wrk-$s-$(echo "$p" | tr '/?' '__')-c$c-r$rep.txt"
        echo "round $rep/$REPS: $s $p, $c connection(s), ${DURATION}s" >&2
        taskset -c "$LOAD_CPU" wrk -t1 -c"$c" -d"${DURATION}s" --latency "http://127.0.0.1:$port$p" >"$f"
        python3 - "$f" "$s" "$p" "$c" "$rep" >>"$OUT/wrk.tsv" <<'PY'
import re, sys
f, s, p, c, rep = sys.argv[1:]
t = open(f).read()
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
if not rps or not p99:
    sys.exit(f"bench.sh: cannot read wrk's output {f}:\n{t}")
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
errs = re.search(r"Socket errors:.*", t)
print(f"{s}\t{p}\t{c}\t{rep}\t{rps.group(1)}\t{ms(*p99.groups()):.3f}\t"
      f"{non2xx.group(1) if non2xx else 0}\t{errs.group(0) if errs else ''}")
PY
      done
    done
  done
done
echo "rss_after_load_kib	$(awk '/VmRSS/ {print $2}' /proc/$OUTPOST_PID/status)	$(awk '/VmRSS/ {print $2}' /proc/$PEER_PID/status)" >"$OUT/rss.tsv"

# 2. Watchers, each count against a fresh server.
: >"$OUT/watchers.jsonl"
for n in $WATCHERS; do
  for s in outpost peer; do
    echo "watchers: $n on $s" >&2
    if [ $s = outpost ]; then
      start_outpost; port=$OUTPOST_PORT; pid=$OUTPOST_PID; write=(--write "v-$n")
    else
      start_peer; port=$PEER_PORT; pid=$PEER_PID; write=()
    fi
    line="$(taskset -c "$LOAD_CPU" python3 "$HERE/watchers.py" --port "$port" --pid "$pid" --n "$n" \
      --path /v1/kv/bench "${write[@]}")" || { echo "bench.sh: watchers failed on $s: $line" >&2; exit 1; }
    echo "{\"server\": \"$s\", \"result\": $line}" >>"$OUT/watchers.jsonl"
  done
done
stop "$OUTPOST_PID"; OUTPOST_PID=""
stop "$PEER_PID"; PEER_PID=""

python3 "$HERE/report.py" "$OUT" "$DURATION" "$REPS" "$INSTANCES" | tee "$OUT/summary.md"
