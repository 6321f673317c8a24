#!/usr/bin/env bash
# Raft benchmark: outpost's replicated KV against etcd 3.4 (Debian's etcd-server), three
# members each on loopback addresses of this machine, in one run; the two systems alternate
# at every measurement and each measurement gets fresh clusters (new data dirs).
#
#  1. KV writes: throughput and latency p50/p99/p99.9/max at each WRITERS count of concurrent
#     writers, for DURATION seconds (and at most MAX_WRITES answers), through the leader:
#     outpost `PUT /v1/kv/<key>` (answers `true` once committed, fsynced and applied), etcd
#     `POST /v3/kv/put` on its HTTP/JSON gateway; every write a new key, VALUE_BYTES-byte
#     values (examples/kv_load.rs: one thread, one keep-alive connection per writer, every
#     latency kept as measured; wrk was used before, but its percentiles include synthetic
#     samples it adds after the run). FOLLOWER_WRITERS also through a follower, which
#     forwards to the leader in both systems. A 1 s warm-up precedes each.
#     Also the CPU time the three servers used per write (/proc/PID/stat, user + system).
#  2. Fail-over: KILLS times, `kill -9` of the leader; time until the two others agree on a
#     new leader, and until a write through it succeeds (cluster.py failover, 10 ms polls).
#     The killed member is restarted on its data and the cluster waited for between kills.
#  3. RSS of each server (VmRSS, median of the three) idle and after SERVICES registrations:
#     outpost `PUT /v1/catalog/register` (SERVICES/100 nodes x 100 services), etcd the same
#     JSON bodies as values of SERVICES keys; 16 concurrent connections to the leader.
# Cells are medians over REPEATS rounds (fail-over: over all kills of all rounds).
#
# outpost members: `outpost agent -server -bootstrap-expect 3 -node rN -bind 127.0.8.N
#   -client 127.0.8.N -data-dir DIR -dns-port -1 -http-port 8500 -serf-lan-port 8301
#   -server-port 8300 -retry-join 127.0.8.2 -retry-join 127.0.8.3 -retry-join 127.0.8.4`
#   (an agent skips itself in -retry-join), N = 2, 3, 4.
# etcd members: `etcd --name eN` on 127.0.9.N, clients on :2379, peers on :2380, defaults
#   otherwise (heartbeat 100 ms, election timeout 1000 ms: elections after 1 to 2 s of
#   silence, outpost's after 0.5 to 1 s; no pre-vote), plus ETCD_FLAGS (e.g.
#   "--election-timeout 500" to match outpost's).
#
# usage: benches/raft/bench.sh      (about 15 minutes with the defaults after the build)
# Env: REPEATS [3], DURATION [10], WRITERS ["1 16 64"], FOLLOWER_WRITERS ["16"; "" for none],
#      KILLS [5], SERVICES [10000], VALUE_BYTES [64], MAX_WRITES [1000000], ETCD_FLAGS [""],
#      BUILD_FLAGS [""; "--no-default-features" measures outpost built without media],
#      CARGO_TARGET_DIR [./target].
# Needs: cargo, etcd 3.4 (Debian package etcd-server), ss (iproute2), python3;
#   the loopback addresses 127.0.8.2-4 and 127.0.9.2-4 free. Everything it starts is stopped
#   by PID (SIGTERM, then SIGKILL after 5 s; SIGKILL on exit or interrupt).
# Prints a markdown table; kv_load output, server logs and raw numbers stay in the printed
# results directory.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
REPEATS="${REPEATS:-3}"
DURATION="${DURATION:-10}"
WRITERS="${WRITERS:-1 16 64}"
FOLLOWER_WRITERS="${FOLLOWER_WRITERS-16}"
KILLS="${KILLS:-5}"
SERVICES="${SERVICES:-10000}"
VALUE_BYTES="${VALUE_BYTES:-64}"
MAX_WRITES="${MAX_WRITES:-1000000}"
ETCD_FLAGS="${ETCD_FLAGS:-}"
BUILD_FLAGS="${BUILD_FLAGS:-}"
MEMBERS="2 3 4"
SETTLE=2 # seconds between "ready" or the last registration and an RSS reading
CLK_TCK="$(getconf CLK_TCK)"

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench.sh: needs $1 (Debian package $2)" >&2; exit 1; }; }
need etcd etcd-server
need ss iproute2
need python3 python3
need cargo "rustup's cargo"
case "$(etcd --version | head -1)" in
  *" 3.4."*) ;;
  *) echo "bench.sh: needs etcd 3.4 (its /v3/ gateway); found: $(etcd --version | head -1)" >&2; exit 1 ;;
esac
busy="$(ss -Htuln | awk '{print $5}' | grep -E '^127\.0\.(8|9)\.[234]:' || true)"
[ -z "$busy" ] || { echo "bench.sh: something already listens on $busy" >&2; exit 1; }

# shellcheck disable=SC2086 # BUILD_FLAGS is a list of cargo flags
(cd "$ROOT" && cargo build --release --locked $BUILD_FLAGS --bin outpost --example kv_load)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
BIN="$TARGET/release/outpost"
LOAD="$TARGET/release/examples/kv_load"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/outpost-raft-bench.XXXXXX")"
mkdir -p "$OUT/logs" "$OUT/load"
echo "results: $OUT" >&2
cat /proc/loadavg >"$OUT/loadavg-before"

declare -A PID=()   # member number -> PID of the running member
SYSTEM=""           # the system of the running cluster
DATA=""             # its data dir
TAG=""              # its name in the logs
LEADER=""           # HOST:PORT of the leader's client address
FOLLOWER=""         # ... and of a follower's

cleanup() {
  local n
  for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null || true; done
  for n in "${!PID[@]}"; do
    for _ in $(seq 20); do gone "${PID[$n]}" && break; sleep 0.1; done
  done
  [ -z "${OUT:-}" ] || rm -rf "$OUT/data" # the servers' data dirs; logs and results stay
}
trap cleanup EXIT
trap 'exit 130' INT TERM

gone() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# start_member N: member N of SYSTEM on its data in DATA, PID in PID[N].
start_member() {
  local n="$1" log="$OUT/logs/$TAG-$1.log"
  if [ "$SYSTEM" = outpost ]; then
    "$BIN" agent -server -bootstrap-expect 3 -node "r$n" -bind "127.0.8.$n" -client "127.0.8.$n" \
      -data-dir "$DATA/r$n" -dns-port -1 -http-port 8500 -serf-lan-port 8301 -server-port 8300 \
      -retry-join 127.0.8.2 -retry-join 127.0.8.3 -retry-join 127.0.8.4 >>"$log" 2>&1 &
  else
    etcd --name "e$n" --data-dir "$DATA/e$n" --logger zap --log-outputs stderr \
      --listen-peer-urls "http://127.0.9.$n:2380" --initial-advertise-peer-urls "http://127.0.9.$n:2380" \
      --listen-client-urls "http://127.0.9.$n:2379" --advertise-client-urls "http://127.0.9.$n:2379" \
      --initial-cluster "e2=http://127.0.9.2:2380,e3=http://127.0.9.3:2380,e4=http://127.0.9.4:2380" \
      --initial-cluster-state new --initial-cluster-token "raft-bench-$TAG" $ETCD_FLAGS >>"$log" 2>&1 &
  fi
  PID[$n]=$!
  disown "${PID[$n]}" # no "Killed" notices from bash for the kill -9s; it still reaps them
}

# wait_ready: until cluster.py sees one agreed leader and a write through it; sets LEADER
# and FOLLOWER.
wait_ready() {
  local got
  if ! got="$(python3 "$HERE/cluster.py" ready "$SYSTEM" 60)"; then
    echo "bench.sh: $SYSTEM ($TAG) did not become ready; its logs: $OUT/logs/$TAG-*.log" >&2
    exit 1
  fi
  read -r LEADER FOLLOWER <<<"$got"
}

# start_cluster SYSTEM TAG: three fresh members, waited for.
start_cluster() {
  SYSTEM="$1"
  TAG="$1-$2"
  DATA="$OUT/data/$TAG"
  mkdir -p "$DATA"
  local n
  for n in $MEMBERS; do start_member "$n"; done
  wait_ready
  echo "$TAG: ready, leader $LEADER" >&2
}

# stop_cluster: SIGTERM to every member at once, SIGKILL to any left after 5 s; the data goes.
# How long each took goes to stops.tsv; the threads of any still up after 2.5 s to stops.log.
stop_cluster() {
  local n t0 el left dumped=0
  t0=$EPOCHREALTIME
  for n in "${!PID[@]}"; do kill "${PID[$n]}" 2>/dev/null || true; done
  for _ in $(seq 100); do
    el=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    left=""
    for n in "${!PID[@]}"; do
      if gone "${PID[$n]}"; then
        printf '%s\t%s\t%s\t%s\n' "$TAG" "$n" "$el" term >>"$OUT/stops.tsv"
        unset "PID[$n]"
      else
        left+=" $n"
      fi
    done
    [ -n "$left" ] || break
    if [ "$dumped" = 0 ] && awk -v e="$el" 'BEGIN { exit !(e >= 2.5) }'; then
      dumped=1
      for n in $left; do
        { echo "$TAG: member $n (pid ${PID[$n]}) still up ${el} s after SIGTERM; its threads (name, state, wchan):"
          for t in /proc/"${PID[$n]}"/task/*; do
            echo "  $(cat "$t/comm" 2>/dev/null) $(awk '{print $3}' "$t/stat" 2>/dev/null) $(cat "$t/wchan" 2>/dev/null)"
          done; } >>"$OUT/stops.log"
      done
    fi
    awk -v e="$el" 'BEGIN { exit !(e >= 5) }' && break
    sleep 0.05
  done
  for n in "${!PID[@]}"; do
    printf '%s\t%s\t%s\t%s\n' "$TAG" "$n" "$el" kill >>"$OUT/stops.tsv"
    kill -9 "${PID[$n]}" 2>/dev/null || true
    for _ in $(seq 50); do gone "${PID[$n]}" && break; sleep 0.1; done
    unset "PID[$n]"
  done
  rm -rf "$DATA"
}

# cpu_ms: CPU time (user + system) the running members have used so far, summed, in ms.
cpu_ms() {
  local n sum=0
  for n in $MEMBERS; do
    sum=$((sum + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/${PID[$n]}/stat")))
  done
  echo $((sum * 1000 / CLK_TCK))
}

member_pids() { local n; for n in $MEMBERS; do printf '%s ' "${PID[$n]}"; done; }

# write_point REP WRITERS VIA(leader|follower): one measured load point on a fresh cluster.
write_point() {
  local rep="$1" w="$2" via="$3" target f line cpu0 cpu
  start_cluster "$SYSTEM_NOW" "w$w-$via-r$rep"
  target="$LEADER"; [ "$via" = follower ] && target="$FOLLOWER"
  timeout $((1 + 30)) "$LOAD" "$SYSTEM" "$target" "$w" 1 warmup "$VALUE_BYTES" 0 \
    >"$OUT/load/$TAG-warmup.txt" 2>&1 || true
  f="$OUT/load/$TAG.txt"
  echo "$TAG: $w writer(s) through the $via ($target), ${DURATION}s" >&2
  cpu0="$(cpu_ms)"
  if ! timeout $((DURATION + 60)) "$LOAD" "$SYSTEM" "$target" "$w" "$DURATION" "bench/w$w" \
      "$VALUE_BYTES" "$MAX_WRITES" >"$f" 2>&1; then
    echo "bench.sh: kv_load failed on $TAG:" >&2; cat "$f" >&2; exit 1
  fi
  cpu=$(($(cpu_ms) - cpu0))
  line="$(grep '^RESULT' "$f" | head -1 | cut -f2-)"
  [ -n "$line" ] || { echo "bench.sh: no RESULT line in $f" >&2; cat "$f" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$SYSTEM" "$rep" "$w" "$via" "$cpu" "$line" >>"$OUT/writes.tsv"
  stop_cluster
}

printf 'system\trep\twriters\tvia\tcpu_ms\tok\tfailed\tseconds\tp50_ms\tp99_ms\tp999_ms\tmax_ms\tfirst_failure\n' >"$OUT/writes.tsv"
printf 'system\trep\tkill\tkilled\tnew_leader\tagree_s\twrite_s\n' >"$OUT/failover.tsv"
printf 'cluster\tmember\tseconds\thow\n' >"$OUT/stops.tsv"
printf 'system\trep\tidle_rss_kib\tidle_anon_kib\tloaded_rss_kib\tloaded_anon_kib\tservices\tregister_s\tbody_bytes\n' >"$OUT/rss.tsv"

for rep in $(seq "$REPEATS"); do
  order="outpost etcd"; [ $((rep % 2)) = 0 ] && order="etcd outpost"
  echo "== round $rep/$REPEATS ($order)" >&2

  # 3. RSS idle and after the registrations.
  for SYSTEM_NOW in $order; do
    start_cluster "$SYSTEM_NOW" "rss-r$rep"
    sleep "$SETTLE"
    idle="$(python3 "$HERE/cluster.py" rss $(member_pids))"
    echo "$TAG: registering $SERVICES services through $LEADER" >&2
    reg="$(python3 "$HERE/cluster.py" register "$SYSTEM" "$LEADER" "$SERVICES" 16)" || {
      echo "bench.sh: registrations failed on $TAG; logs $OUT/logs/$TAG-*.log" >&2; exit 1; }
    sleep "$SETTLE"
    loaded="$(python3 "$HERE/cluster.py" rss $(member_pids))"
    echo "{\"system\": \"$SYSTEM\", \"rep\": $rep, \"idle\": $idle, \"loaded\": $loaded, \"register\": $reg}" >>"$OUT/rss.jsonl"
    python3 - "$SYSTEM" "$rep" "$idle" "$loaded" "$reg" >>"$OUT/rss.tsv" <<'PY'
import json, sys
s, rep, idle, loaded, reg = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:])
print("\t".join(map(str, [s, rep, idle["median_rss_kib"], idle["median_anon_kib"], loaded["median_rss_kib"],
                          loaded["median_anon_kib"], reg["n"], reg["seconds"], reg["body_bytes"]])))
PY
    stop_cluster
  done

  # 1. Writes.
  for w in $WRITERS; do
    for SYSTEM_NOW in $order; do write_point "$rep" "$w" leader; done
  done
  for w in $FOLLOWER_WRITERS; do
    for SYSTEM_NOW in $order; do write_point "$rep" "$w" follower; done
  done

  # 2. Fail-over.
  for SYSTEM_NOW in $order; do
    start_cluster "$SYSTEM_NOW" "failover-r$rep"
    for k in $(seq "$KILLS"); do
      args=()
      for n in $MEMBERS; do args+=("$n=${PID[$n]}"); done
      if ! got="$(python3 "$HERE/cluster.py" failover "$SYSTEM" "${args[@]}")"; then
        echo "bench.sh: fail-over $k failed on $TAG; logs $OUT/logs/$TAG-*.log" >&2; exit 1
      fi
      killed="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["killed"])' "$got")"
      python3 - "$SYSTEM" "$rep" "$k" "$got" >>"$OUT/failover.tsv" <<'PY'
import json, sys
s, rep, k, got = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
print("\t".join(map(str, [s, rep, k, got["killed"], got["new_leader"], got["agree_s"], got["write_s"]])))
PY
      echo "$TAG: kill $k/$KILLS of member $killed: $got" >&2
      for _ in $(seq 50); do gone "${PID[$killed]}" && break; sleep 0.1; done
      gone "${PID[$killed]}" || { echo "bench.sh: member $killed of $TAG still there 5 s after kill -9" >&2; exit 1; }
      start_member "$killed"
      wait_ready
      sleep 1 # the restarted member catches up before the next kill
    done
    stop_cluster
  done
done

cat /proc/loadavg >"$OUT/loadavg-after"
rm -rf "$OUT/data"
command="REPEATS=$REPEATS DURATION=$DURATION WRITERS=\"$WRITERS\" FOLLOWER_WRITERS=\"$FOLLOWER_WRITERS\" KILLS=$KILLS SERVICES=$SERVICES"
[ "$VALUE_BYTES" = 64 ] || command+=" VALUE_BYTES=$VALUE_BYTES"
[ "$MAX_WRITES" = 1000000 ] || command+=" MAX_WRITES=$MAX_WRITES"
[ -z "$ETCD_FLAGS" ] || command+=" ETCD_FLAGS=\"$ETCD_FLAGS\""
[ -z "$BUILD_FLAGS" ] || command+=" BUILD_FLAGS=\"$BUILD_FLAGS\""
python3 "$HERE/report.py" "$OUT" "$command benches/raft/bench.sh" "$DURATION" "$VALUE_BYTES" \
  "$(etcd --version | head -1)" | tee "$OUT/summary.md"
