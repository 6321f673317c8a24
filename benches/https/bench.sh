#!/usr/bin/env bash
# HTTPS benchmark: the agent's API over TLS next to the same server without TLS, same run.
#
#  1. req/s and p99 of `GET /v1/catalog/service/web` with keep-alive (wrk --latency), HTTPS
#     on -https-port against plain HTTP on -http-port of the same agent;
#  2. new connections per second, each with a request (`Connection: close`): a full TLS
#     handshake (ECDHE, no resumption: wrk does not resume sessions) against a TCP connect;
#  3. RSS per open connection: N blocking queries parked over TLS, then N over plain HTTP,
#     each against a fresh agent (benches/http/watchers.py --tls).
# Server pinned to CPU 0, load to CPU 1; REPS interleaved rounds of DURATION s; medians.
#
# usage: benches/https/bench.sh      Env: DURATION [5], REPS [3], CONNS ["1 64"], WATCHERS [1000]
# Needs: cargo, wrk (built with TLS, as Debian's is), taskset, ss, curl, python3; 2 CPUs.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DURATION="${DURATION:-5}"
REPS="${REPS:-3}"
CONNS="${CONNS:-1 64}"
WATCHERS="${WATCHERS:-1000}"
HTTP_PORT=18510
HTTPS_PORT=18511
PATH_Q=/v1/catalog/service/web
for t in wrk taskset ss curl python3 cargo; do
  command -v "$t" >/dev/null || { echo "https bench: needs $t" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(cd "$ROOT" && cargo build --release --locked --bin outpost)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/outpost"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/outpost-https-bench.XXXXXX")"
echo "results: $OUT" >&2
PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; }
trap stop EXIT
start() {
  taskset -c 0 "$BIN" agent -dev -dns-port -1 -http-port $HTTP_PORT -https-port $HTTPS_PORT \
    -client 127.0.0.1 >"$OUT/agent.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do
    curl -skf "https://127.0.0.1:$HTTPS_PORT/v1/status/leader" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "agent did not start; log in $OUT/agent.log" >&2; exit 1
}
# wrk prints "Requests/sec: N" and, with --latency, "99% X(us|ms|s)".
run_wrk() { # label conns url [extra wrk args]
  local label=$1 c=$2 url=$3; shift 3
  taskset -c 1 wrk -t1 -c"$c" -d"${DURATION}s" --latency "$@" "$url" >"$OUT/$label.txt" 2>&1
  python3 - "$OUT/$label.txt" "$label" >>"$OUT/results.tsv" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)] if m else float("nan")
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{sys.argv[2]}\t{rps}\t{p99}\t{errs.group(1) if errs else 0}")
PY
}
start
for r in $(seq "$REPS"); do
  for c in $CONNS; do
    echo "round $r/$REPS: keep-alive, $c connection(s)" >&2
    run_wrk "https-ka-$c" "$c" "https://127.0.0.1:$HTTPS_PORT$PATH_Q"
    run_wrk "http-ka-$c" "$c" "http://127.0.0.1:$HTTP_PORT$PATH_Q"
  done
  echo "round $r/$REPS: a new connection per request" >&2
  run_wrk "https-new" 16 "https://127.0.0.1:$HTTPS_PORT/v1/status/leader" -H "Connection: close"
  run_wrk "http-new" 16 "http://127.0.0.1:$HTTP_PORT/v1/status/leader" -H "Connection: close"
done
RSS_LOAD=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
stop
for n in $WATCHERS; do
  for mode in tls plain; do
    start
    curl -sf -X PUT --data-binary 0 "http://127.0.0.1:$HTTP_PORT/v1/kv/bench" >/dev/null
    args=(--port $HTTP_PORT --pid "$PID" --n "$n" --path /v1/kv/bench --write 1)
    [ "$mode" = tls ] && args+=(--watch-port $HTTPS_PORT --tls)
    echo "watchers: $n over $mode" >&2
    taskset -c 1 python3 "$ROOT/benches/http/watchers.py" "${args[@]}" >"$OUT/watchers-$mode-$n.json"
    stop
  done
done
python3 - "$OUT" "$RSS_LOAD" "$DURATION" "$REPS" <<'PY'
import json, statistics, sys, glob, os, datetime, platform
out, rss_load, dur, reps = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = {}
for line in open(f"{out}/results.tsv"):
    label, rps, p99, errs = line.split("\t")
    rows.setdefault(label, []).append((float(rps), float(p99), int(errs)))
med = lambda label, i: statistics.median(r[i] for r in rows[label])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"### HTTPS: the agent over TLS next to the same agent without TLS, same run ({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC)\n")
print(f"Machine: {os.cpu_count()} × {cpu}, kernel {platform.release()}. Command: `benches/https/bench.sh` — wrk -t1 --latency, {dur} s runs, {reps} interleaved rounds, agent on CPU 0, wrk on CPU 1; medians. TLS 1.3 (rustls, aws-lc-rs), self-signed ECDSA P-256 certificate.\n")
print("| request | connections | HTTPS req/s | HTTP req/s | ratio | HTTPS p99 | HTTP p99 |")
print("|---|---|---|---|---|---|---|")
for c in sorted({l.split("-")[-1] for l in rows if "-ka-" in l}, key=int):
    h, p = f"https-ka-{c}", f"http-ka-{c}"
    print(f"| `GET /v1/catalog/service/web`, keep-alive | {c} | {med(h,0):,.0f} | {med(p,0):,.0f} | {med(h,0)/med(p,0):.2f} | {med(h,1):.3f} ms | {med(p,1):.3f} ms |")
h, p = "https-new", "http-new"
print(f"| `GET /v1/status/leader`, new connection each (TLS handshake vs TCP connect) | 16 | {med(h,0):,.0f} | {med(p,0):,.0f} | {med(h,0)/med(p,0):.2f} | {med(h,1):.3f} ms | {med(p,1):.3f} ms |")
print(f"\nRSS after the load: {rss_load/1024:.1f} MiB.\n")
print("| open connections (each a parked blocking query) | RSS idle → held | KiB per connection | one write answers all |")
print("|---|---|---|---|")
for f in sorted(glob.glob(f"{out}/watchers-*.json")):
    mode, n = os.path.basename(f)[len("watchers-"):-5].split("-")
    w = json.load(open(f))
    print(f"| {int(n):,} over {'TLS' if mode == 'tls' else 'plain HTTP'} | {w['rss_idle_kib']/1024:.1f} → {w['rss_held_kib']/1024:.1f} MiB | {w['kib_per_watcher']} | {w.get('returned_with_new_value')}/{n} in {w.get('last_return_s')} s |")
PY
