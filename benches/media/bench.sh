#!/usr/bin/env bash
# Media benchmark: outpost's WebRTC gateway (WHEP) against Janus 1.1.2's streaming plugin,
# side by side in one run, with the Janus harness's sender, config and network namespace.
#
# Both servers get the same GStreamer sender (the harness's sender.sh: VP8 pt 100 to
# 127.0.0.1:5004, Opus pt 111 to :5002, 640x480@30, ~1 Mbit/s) and the same viewers (this
# folder's viewer_aiortc.py: aiortc without decoding; viewer.mjs: headless Chromium decoding
# and rendering), which speak WHEP to outpost and Janus's HTTP API to Janus. Everything runs
# in the harness's private network namespace (run-in-netns.sh: 127.0.0.1 on lo, 127.0.0.2 on
# a veth; both servers put their WebRTC side on 127.0.0.2).
#
# Rows: N = 0 (sender feeding an unwatched stream), aiortc N = COUNTS_AIORTC, Chromium
# N = COUNTS_CHROMIUM. Each row runs once per server, back to back (the order alternates
# between repeats), each with a fresh server and sender: connect N viewers, wait until each
# has more than 30 frames, wait SETTLE, then sample over WINDOW seconds:
#   server  : CPU (utime+stime from /proc/PID/stat, % of ONE core), VmRSS, VmHWM, threads,
#             each summed over the server's process tree (outpost and its outpost-media
#             process; shared pages such as libc's count twice)
#   sender  : CPU, VmRSS;  viewers: CPU and PSS of the client's process tree
#   viewers : time to the first decoded frame, fps and packets over the window
#   outpost : its /v1/streams entry (state, viewers, fps) at the end of the window
# In the aiortc row with N = LATENCY_N, after the window, LATENCY seconds of loopback
# capture give the added latency (latency.py: RTP frame in -> SRTP frame out).
# Before the rows, each server is started alone (no sender, no viewer) for its idle VmRSS:
# outpost with its one unwatched stream, again with -dev (which adds the `test` stream), and
# again once its media process stopped for want of viewers (`media_idle_timeout`, 30 s).
#
# outpost runs without -dev in the rows, with a throw-away data dir, so that, like Janus with
# its one mountpoint, it has exactly one stream (`demo`, source rtp); OUTPOST_DEV=1 runs the
# rows with -dev instead (then the idle `test` stream is there too).
#
# usage: sudo benches/media/bench.sh JANUS_HARNESS_DIR
#   JANUS_HARNESS_DIR: the Janus harness folder (sender.sh, run-in-netns.sh, conf/, setup.sh);
#   nothing in it is changed. Run its setup.sh first if janus or chromium is missing.
# Env: REPEATS [3], WINDOW [20] s, SETTLE [3] s, COUNTS_AIORTC ["1 4 8 16"],
#      COUNTS_CHROMIUM ["1 4 8"], CLIENTS ["aiortc chromium"], SERVERS ["janus outpost"],
#      BASELINE [1] (the N=0 rows), IDLE [1] (the idle VmRSS runs), LATENCY [5] s (0 skips),
#      LATENCY_N [1], OUTPOST_DEV [0], OUTPOST_HTTP_PORT [18600],
#      OUT [benches/media/results/<UTC time>], KEEP_LOGS [0] (keep every process's log in
#      OUT/logs), CARGO_TARGET_DIR [./target], and sender.sh's WIDTH HEIGHT FPS VBITRATE
#      KEYINT ABITRATE.
# Installs its viewers' packages (pinned: package.json, requirements.txt) into
# benches/media/.deps on first use. Writes OUT/results.jsonl and OUT/results.md.
# About 30 s per server and row: ~9 min per repeat with the default counts (after the build).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
H="$(cd "${1:?usage: bench.sh JANUS_HARNESS_DIR}" && pwd)"
DEPS="$HERE/.deps"

REPEATS=${REPEATS:-3}
WINDOW=${WINDOW:-20}
SETTLE=${SETTLE:-3}
COUNTS_AIORTC=${COUNTS_AIORTC:-"1 4 8 16"}
COUNTS_CHROMIUM=${COUNTS_CHROMIUM:-"1 4 8"}
CLIENTS=${CLIENTS:-"aiortc chromium"}
SERVERS=${SERVERS:-"janus outpost"}
BASELINE=${BASELINE:-1}
IDLE=${IDLE:-1}
LATENCY=${LATENCY:-5}
LATENCY_N=${LATENCY_N:-1}
OUTPOST_DEV=${OUTPOST_DEV:-0}
OUTPOST_HTTP_PORT=${OUTPOST_HTTP_PORT:-18600}
export WIDTH=${WIDTH:-640} HEIGHT=${HEIGHT:-480} FPS=${FPS:-30} VBITRATE=${VBITRATE:-1000000} \
       KEYINT=${KEYINT:-30} ABITRATE=${ABITRATE:-64000}
export REPEATS WINDOW SETTLE COUNTS_AIORTC COUNTS_CHROMIUM CLIENTS SERVERS BASELINE IDLE LATENCY \
       LATENCY_N OUTPOST_DEV OUTPOST_HTTP_PORT

int() { [[ "$2" =~ ^[0-9]+$ ]] || { echo "bench.sh: $1 must be a whole number, not '$2'" >&2; exit 2; }; }
int REPEATS "$REPEATS"; int WINDOW "$WINDOW"; int SETTLE "$SETTLE"; int LATENCY "$LATENCY"
int LATENCY_N "$LATENCY_N"; int OUTPOST_HTTP_PORT "$OUTPOST_HTTP_PORT"
for n in $COUNTS_AIORTC; do int COUNTS_AIORTC "$n"; [ "$n" -le 64 ] || { echo "bench.sh: at most 64 aiortc viewers" >&2; exit 2; }; done
for n in $COUNTS_CHROMIUM; do int COUNTS_CHROMIUM "$n"; [ "$n" -le 16 ] || { echo "bench.sh: at most 16 Chromium pages" >&2; exit 2; }; done
if [ "$REPEATS" -lt 1 ] || [ "$REPEATS" -gt 20 ]; then echo "bench.sh: REPEATS must be 1-20" >&2; exit 2; fi
if [ "$WINDOW" -lt 1 ] || [ "$WINDOW" -gt 600 ]; then echo "bench.sh: WINDOW must be 1-600 s" >&2; exit 2; fi
[ "$LATENCY" -le 60 ] || { echo "bench.sh: LATENCY must be 0-60 s" >&2; exit 2; }
for s in $SERVERS; do case $s in janus|outpost) ;; *) echo "bench.sh: unknown server $s" >&2; exit 2 ;; esac; done
for c in $CLIENTS; do case $c in aiortc|chromium) ;; *) echo "bench.sh: unknown client $c" >&2; exit 2 ;; esac; done

# ---- outside the namespace: checks, build, viewers' packages, then re-run inside ----------
if [ "${MEDIA_BENCH_INSIDE:-}" != 1 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "bench.sh: run as root (network namespace)" >&2; exit 1; }
  for f in sender.sh run-in-netns.sh conf/janus.jcfg conf/janus.plugin.streaming.jcfg; do
    [ -e "$H/$f" ] || { echo "bench.sh: $H/$f missing: is $H the Janus harness folder?" >&2; exit 1; }
  done
  for t in janus gst-launch-1.0 chromium; do
    command -v "$t" >/dev/null 2>&1 || { echo "bench.sh: $t missing: run the Janus harness folder's setup.sh (as root)" >&2; exit 1; }
  done
  for t in node npm python3 curl unshare ip ps awk cargo git; do
    command -v "$t" >/dev/null 2>&1 || { echo "bench.sh: needs $t" >&2; exit 1; }
  done
  python3 -c 'import venv' 2>/dev/null || { echo "bench.sh: needs python3's venv module (python3-venv)" >&2; exit 1; }

  (cd "$ROOT" && cargo build --release --locked)
  TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
  case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
  export MEDIA_BENCH_BIN="$TARGET/release/outpost"
  [ -x "$MEDIA_BENCH_BIN" ] || { echo "bench.sh: no $MEDIA_BENCH_BIN after the build" >&2; exit 1; }
  MEDIA_BENCH_COMMIT="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
  export MEDIA_BENCH_COMMIT

  # The viewers' packages, pinned, into .deps (ignored by git); redone when a pin changes.
  mkdir -p "$DEPS"
  stamp() { sha256sum "$1" | cut -c1-16; }
  if [ ! -x "$DEPS/venv/bin/python" ] || [ "$(cat "$DEPS/venv.stamp" 2>/dev/null)" != "$(stamp "$HERE/requirements.txt")" ]; then
    echo "== installing aiortc into $DEPS/venv" >&2
    [ -x "$DEPS/venv/bin/python" ] || python3 -m venv "$DEPS/venv"
    "$DEPS/venv/bin/pip" install -q -r "$HERE/requirements.txt"
    stamp "$HERE/requirements.txt" >"$DEPS/venv.stamp"
  fi
  if [ ! -d "$DEPS/node_modules/playwright-core" ] || [ "$(cat "$DEPS/npm.stamp" 2>/dev/null)" != "$(stamp "$HERE/package.json")" ]; then
    echo "== installing playwright-core into $DEPS/node_modules (no browser download)" >&2
    cp "$HERE/package.json" "$DEPS/package.json"
    (cd "$DEPS" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-package-lock --no-audit --no-fund --silent)
    stamp "$HERE/package.json" >"$DEPS/npm.stamp"
  fi

  OUT="${OUT:-$HERE/results/$(date -u +%Y%m%dT%H%M%SZ)}"
  mkdir -p "$OUT"
  OUT="$(cd "$OUT" && pwd)"
  export OUT
  export MEDIA_BENCH_INSIDE=1
  exec "$H/run-in-netns.sh" "$HERE/bench.sh" "$H"
fi

# ---- inside the namespace -------------------------------------------------------------------
ip -o addr show | grep -q ' 127\.0\.0\.2/' || { echo "bench.sh: not in the harness's namespace (no 127.0.0.2)" >&2; exit 1; }
BIN="$MEDIA_BENCH_BIN"
CLK=$(getconf CLK_TCK)
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/outpost-media-bench.XXXXXX")"
METRICS="$OUT/results.jsonl"
JANUS_URL=http://127.0.0.1:8088/janus
WHEP_URL="http://127.0.0.1:$OUTPOST_HTTP_PORT/whep/demo"
PY="$DEPS/venv/bin/python"

SRV_PID=""; SPID=""; VPID=""
# stop_tree PID SIGNAL: signal one process we started, wait up to 5 s, then SIGKILL it and
# whatever of its descendants (listed before the signal) is still there.
stop_tree() {
  local pid=$1 sig=$2 kids p
  [ -n "$pid" ] || return 0
  if ! kill -0 "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; return 0; fi
  kids=$(tree "$pid" | tail -n +2)
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  for p in $kids; do kill -KILL "$p" 2>/dev/null || true; done
}
cleanup() {
  stop_tree "$VPID" TERM; stop_tree "$SPID" INT; stop_tree "$SRV_PID" INT
  VPID=""; SPID=""; SRV_PID=""
}
finish() {
  local rc=$?
  cleanup
  if [ "${KEEP_LOGS:-0}" = 1 ]; then mkdir -p "$OUT/logs" && cp -r "$LOGS"/. "$OUT/logs/"; fi
  rm -rf "$LOGS"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# ---- /proc helpers (as the harness's measure.sh reads them) ----------------------------------
ticks() {  # utime+stime of one process, all threads, in clock ticks
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${12} + ${13} ))
}
tree() {  # PID and all its descendants
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END { q[1] = root; n = 1; i = 1
          while (i <= n) { p = q[i++]; print p; m = split(kids[p], a, " ")
                           for (k = 1; k <= m; k++) q[++n] = a[k] } }'
}
tree_ticks() { local t=0 p; for p in $(tree "$1"); do t=$(( t + $(ticks "$p") )); done; echo "$t"; }
proc_kb() {  # proc_kb FILE PID FIELD: a field of /proc/PID/FILE (status, smaps_rollup), kB
  local v; v=$(awk -v k="$3:" '$1 == k { print $2 }' "/proc/$2/$1" 2>/dev/null || true); echo "${v:-0}"
}
status_kb() { proc_kb status "$1" "$2"; }
tree_sum_kb() {  # tree_sum_kb FILE PID FIELD: the field summed over PID and its descendants
  local t=0 p
  for p in $(tree "$2"); do t=$(( t + $(proc_kb "$1" "$p" "$3") )); done
  echo "$t"
}
# outpost's VmRSS, VmHWM and threads count its media process too; the viewers' Pss all theirs.
tree_status_kb() { tree_sum_kb status "$1" "$2"; }
tree_kb() { tree_sum_kb smaps_rollup "$1" "$2"; }
sys_cpu() { awk '$1 == "cpu" { idle = $5 + $6; tot = 0; for (i = 2; i <= 9; i++) tot += $i; print tot, idle }' /proc/stat; }

# ---- servers --------------------------------------------------------------------------------
mkdir -p "$LOGS/outpost-conf"
cat >"$LOGS/outpost-conf/demo.json" <<'JSON'
{"stream": {"name": "demo", "source": "rtp", "video_port": 5004, "video_pt": 100, "video_codec": "vp8",
            "audio_port": 5002, "audio_pt": 111, "audio_codec": "opus"}}
JSON

# start_server SERVER TAG [dev]: a fresh server in SRV_PID, serving once this returns 0.
start_server() {
  local server=$1 tag=$2 mode=${3:-}
  case $server in
    janus)
      (cd "$LOGS" && exec janus -F "$H/conf" -o) >"$LOGS/janus-$tag.log" 2>&1 &
      SRV_PID=$!
      for _ in $(seq 100); do
        curl -s -m 1 -X POST -d '{"janus":"info","transaction":"probe"}' "$JANUS_URL" 2>/dev/null \
          | grep -q server_info && return 0
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
      done ;;
    outpost)
      local data="$LOGS/outpost-data-$tag" mode_args=()
      rm -rf "$data"; mkdir -p "$data"
      if [ "$mode" = dev ] || { [ -z "$mode" ] && [ "$OUTPOST_DEV" = 1 ]; }; then mode_args=(-dev)
      else mode_args=(-data-dir "$data"); fi
      # DNS on an ephemeral port (it is part of the agent), no HTTPS; the WebRTC socket binds
      # on the advertise address, 127.0.0.2 as Janus's candidates.
      "$BIN" agent "${mode_args[@]}" -config-dir "$LOGS/outpost-conf" -dns-port 0 \
        -http-port "$OUTPOST_HTTP_PORT" -https-port -1 -client 127.0.0.1 \
        -bind 127.0.0.2 -advertise 127.0.0.2 >"$LOGS/outpost-$tag.log" 2>&1 &
      SRV_PID=$!
      for _ in $(seq 100); do
        grep -qs 'WebRTC (WHEP) on udp' "$LOGS/outpost-$tag.log" \
          && curl -s -m 1 "http://127.0.0.1:$OUTPOST_HTTP_PORT/v1/streams" 2>/dev/null | grep -q '"demo"' \
          && return 0
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
      done ;;
  esac
  echo "bench.sh: $server did not come up; its log:" >&2
  tail -n 20 "$LOGS/$server-$tag.log" >&2
  return 1
}

facts() {
  python3 - "$DEPS" "$BIN" "$MEDIA_BENCH_COMMIT" <<'PY'
import datetime, json, os, platform, re, subprocess, sys
deps, binary, commit = sys.argv[1:]
def cmd(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:")), 0)
osname = next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME=")), "?")
try:
    pw = json.load(open(os.path.join(deps, "node_modules/playwright-core/package.json")))["version"]
except OSError:
    pw = "?"
janus = re.search(r"\(([\d.]+)\)", cmd("janus", "--version"))
gst = cmd("gst-launch-1.0", "--version").splitlines()
e = os.environ
print(json.dumps({"facts": {
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    "cpu_model": cpu, "cores": os.cpu_count(), "mem_gib": round(mem / 1048576, 1),
    "kernel": platform.release(), "os": osname, "load_avg_at_start": os.getloadavg(),
    "janus": janus.group(1) if janus else "?", "outpost": commit,
    "outpost_version": cmd(binary, "version").splitlines()[0] if cmd(binary, "version") else "?",
    "gstreamer": gst[1] if len(gst) > 1 else "?", "chromium": (cmd("chromium", "--version").splitlines() or ["?"])[-1],
    "node": cmd("node", "--version"), "playwright_core": pw,
    "aiortc": cmd(os.path.join(deps, "venv/bin/python"), "-c", "import aiortc; print(aiortc.__version__)"),
    "sender": {k: e.get(k) for k in ("WIDTH", "HEIGHT", "FPS", "VBITRATE", "KEYINT", "ABITRATE")},
    "knobs": {k: e.get(k) for k in ("REPEATS", "WINDOW", "SETTLE", "COUNTS_AIORTC", "COUNTS_CHROMIUM",
                                    "CLIENTS", "SERVERS", "BASELINE", "LATENCY", "LATENCY_N", "OUTPOST_DEV")},
}}))
PY
}

# ---- one idle run: the server alone, no sender, no viewer -------------------------------------
idle_one() {  # idle_one SERVER LABEL [dev|asleep]
  local server=$1 label=$2 tag="idle-$2" t0 t1 c0 c1 i
  echo "== idle: $label" >&2
  start_server "$server" "$tag" "${3:-}" || { cleanup; return 0; }
  sleep "$SETTLE"
  if [ "${3:-}" = asleep ]; then
    # outpost stops its media process after media_idle_timeout (30 s) without a viewer.
    for ((i = 0; i < 90; i++)); do
      grep -qs 'the media process stops until the next one' "$LOGS/outpost-$tag.log" && break
      sleep 1
    done
    sleep "$SETTLE"
  fi
  c0=$(tree_ticks "$SRV_PID"); t0=$(date +%s.%N)
  sleep 5
  c1=$(tree_ticks "$SRV_PID"); t1=$(date +%s.%N)
  local rss hwm thr streams=""
  rss=$(tree_status_kb "$SRV_PID" VmRSS); hwm=$(tree_status_kb "$SRV_PID" VmHWM); thr=$(tree_status_kb "$SRV_PID" Threads)
  [ "$server" = outpost ] && streams=$(curl -s -m 2 "http://127.0.0.1:$OUTPOST_HTTP_PORT/v1/streams" || true)
  stop_tree "$SRV_PID" INT; SRV_PID=""
  python3 - "$server" "$label" "$CLK" "$t0" "$t1" "$c0" "$c1" "$rss" "$hwm" "$thr" "$streams" >>"$METRICS" <<'PY'
import json, sys
server, label, clk, t0, t1, c0, c1, rss, hwm, thr, streams = sys.argv[1:]
try:
    names = [s["Name"] for s in json.loads(streams)]
except ValueError:
    names = None
print(json.dumps({"idle": label, "server": server, "cpu_pct": round(100 * (int(c1) - int(c0)) / int(clk) / (float(t1) - float(t0)), 2),
                  "rss_kb": int(rss), "hwm_kb": int(hwm), "threads": int(thr), "streams": names}))
PY
  tail -n 1 "$METRICS" >&2
}

# ---- one measurement ----------------------------------------------------------------------------
run_one() {  # run_one SERVER CLIENT N
  local server=$1 client=$2 n=$3 rep=$REP
  local tag="$server-$client-$n-r$rep" ready="$LOGS/ready-$server-$client-$n-r$rep" vrc=0 hold lat=0
  echo "== rep $rep/$REPEATS: $server, $client x $n" >&2
  if [ "$client" = aiortc ] && [ "$n" = "$LATENCY_N" ] && [ "$LATENCY" -gt 0 ]; then lat=$LATENCY; fi
  local ok=true err="" started=false
  if ! start_server "$server" "$tag"; then
    ok=false; err="server did not start"
  else
    started=true
    "$H/sender.sh" >"$LOGS/sender-$tag.log" 2>&1 &
    SPID=$!
    sleep 2
    hold=$(( SETTLE + WINDOW + lat + 3 ))
    rm -f "$ready"
    if [ "$n" -gt 0 ]; then
      local sig
      if [ "$server" = outpost ]; then sig=(--whep "$WHEP_URL"); else sig=(--janus "$JANUS_URL"); fi
      case $client in
        aiortc) TMPDIR="$LOGS" "$PY" "$HERE/viewer_aiortc.py" "${sig[@]}" --viewers "$n" --hold "$hold" \
                  --ready-file "$ready" --json >"$LOGS/viewer-$tag.log" 2>"$LOGS/viewer-$tag.err" & ;;
        chromium) TMPDIR="$LOGS" MEDIA_BENCH_DEPS="$DEPS" node "$HERE/viewer.mjs" "${sig[@]}" --viewers "$n" \
                  --hold "$hold" --ready-file "$ready" --json >"$LOGS/viewer-$tag.log" 2>"$LOGS/viewer-$tag.err" & ;;
      esac
      VPID=$!
      # each viewer has 20 s to pass 30 frames; browser start-up on top
      for _ in $(seq 450); do
        [ -e "$ready" ] && break
        kill -0 "$VPID" 2>/dev/null || break
        sleep 0.1
      done
      if [ ! -e "$ready" ]; then ok=false; err="viewers did not all get video"; echo "   $err" >&2; fi
    fi
  fi

  local st0=0 st1=0 vt0=0 vt1=0 c0=0 c1=0 sys0="0 0" sys1="0 0" t0=0 t1=1
  local rss=0 hwm=0 thr=0 srss=0 vpss=0 vprocs=0 streams="" latjson=""
  if [ "$started" = true ] && kill -0 "$SRV_PID" 2>/dev/null; then
    sleep "$SETTLE"
    c0=$(tree_ticks "$SRV_PID"); st0=$(ticks "$SPID"); [ -n "$VPID" ] && vt0=$(tree_ticks "$VPID")
    sys0=$(sys_cpu); t0=$(date +%s.%N)
    sleep "$WINDOW"
    c1=$(tree_ticks "$SRV_PID"); st1=$(ticks "$SPID"); [ -n "$VPID" ] && vt1=$(tree_ticks "$VPID")
    sys1=$(sys_cpu); t1=$(date +%s.%N)
    rss=$(tree_status_kb "$SRV_PID" VmRSS); hwm=$(tree_status_kb "$SRV_PID" VmHWM); thr=$(tree_status_kb "$SRV_PID" Threads)
    srss=$(status_kb "$SPID" VmRSS)
    [ -n "$VPID" ] && { vpss=$(tree_kb "$VPID" Pss); vprocs=$(tree "$VPID" | wc -l); }
    [ "$server" = outpost ] && streams=$(curl -s -m 2 "http://127.0.0.1:$OUTPOST_HTTP_PORT/v1/streams" || true)
    kill -0 "$SRV_PID" 2>/dev/null || { ok=false; err="server exited during the window"; }
    if [ "$lat" -gt 0 ] && [ "$ok" = true ]; then
      echo "   capturing ${lat}s of loopback traffic for the latency" >&2
      latjson=$(timeout $(( lat + 30 )) python3 "$HERE/latency.py" --seconds "$lat" --json 2>"$LOGS/latency-$tag.err" || true)
    fi
  fi
  if [ -n "$VPID" ]; then
    # the viewers print their figures and leave after --hold; bounded wait, then stop them
    for _ in $(seq $(( (hold + 40) * 10 ))); do kill -0 "$VPID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$VPID" 2>/dev/null; then stop_tree "$VPID" TERM; vrc=124; else wait "$VPID" || vrc=$?; fi
    VPID=""
  fi
  stop_tree "$SPID" INT; SPID=""
  if [ "$started" = true ] && ! kill -0 "$SRV_PID" 2>/dev/null && [ "$ok" = true ]; then ok=false; err="server exited"; fi
  stop_tree "$SRV_PID" INT; SRV_PID=""

  python3 - "$server" "$client" "$n" "$rep" "$ok" "$err" "$vrc" "$CLK" "$t0" "$t1" "$c0" "$c1" "$st0" "$st1" \
      "$vt0" "$vt1" "$sys0" "$sys1" "$rss" "$hwm" "$thr" "$srss" "$vpss" "$vprocs" \
      "$LOGS/viewer-$tag.log" "$streams" "$latjson" >>"$METRICS" <<'PY'
import json, sys
a = sys.argv[1:]
server, client, n, rep, ok, err, vrc, clk = a[0], a[1], int(a[2]), int(a[3]), a[4] == "true", a[5], int(a[6]), int(a[7])
t0, t1 = float(a[8]), float(a[9]); secs = max(1e-9, t1 - t0)
c0, c1, st0, st1, vt0, vt1 = map(int, a[10:16])
s0, s1 = [list(map(int, x.split())) for x in a[16:18]]
busy = ((s1[0] - s0[0]) - (s1[1] - s0[1])) / max(1, s1[0] - s0[0])
rss, hwm, thr, srss, vpss, vprocs = map(int, a[18:24])
pct = lambda d: round(100.0 * d / clk / secs, 2)  # percent of ONE core
viewers, cmdline = [], None
try:
    for line in open(a[24]):
        line = line.strip()
        if line.startswith("{"):
            viewers.append(json.loads(line))
        elif line.startswith("chromium-cmdline: "):
            cmdline = " ".join(line[len("chromium-cmdline: "):].split(" ")[1:])
except (FileNotFoundError, ValueError):
    pass
stream = None
try:
    stream = next((s for s in json.loads(a[25]) if s.get("Name") == "demo"), None)
except ValueError:
    pass
try:
    latency = json.loads(a[26]) if a[26] else None
except ValueError:
    latency = None
print(json.dumps({
    "server": server, "client": client, "viewers": n, "repeat": rep, "all_viewers_ok": ok, "error": err or None,
    "viewer_exit": vrc, "window_s": round(secs, 2),
    "server_cpu_pct": pct(c1 - c0), "server_rss_kb": rss, "server_hwm_kb": hwm, "server_threads": thr,
    "sender_cpu_pct": pct(st1 - st0), "sender_rss_kb": srss,
    "viewer_cpu_pct": pct(vt1 - vt0), "viewer_pss_kb": vpss, "viewer_procs": vprocs,
    "system_busy_pct_of_all_cores": round(100 * busy, 1),
    "outpost_stream": stream, "latency": latency, "chromium_cmdline": cmdline, "per_viewer": viewers}))
PY
  tail -n 1 "$METRICS" | python3 -c 'import json,sys; m=json.loads(sys.stdin.read()); print("   %s %.1f%%  rss %d KiB  hwm %d KiB | sender %.1f%% | viewers %.1f%% | system %.1f%% of all cores | ok=%s%s" % (m["server"], m["server_cpu_pct"], m["server_rss_kb"], m["server_hwm_kb"], m["sender_cpu_pct"], m["viewer_cpu_pct"], m["system_busy_pct_of_all_cores"], m["all_viewers_ok"], " (%s)" % m["error"] if m["error"] else ""))' >&2
}

# ---- main -------------------------------------------------------------------------------------------
echo "results: $OUT (logs in $LOGS$([ "${KEEP_LOGS:-0}" = 1 ] && echo ", kept in $OUT/logs"))" >&2
facts >"$METRICS"
if [ "$IDLE" = 1 ]; then
  for s in $SERVERS; do
    case $s in
      janus) idle_one janus janus ;;
      outpost) idle_one outpost outpost; idle_one outpost outpost-dev dev
               idle_one outpost outpost-asleep asleep ;;
    esac
  done
fi
rows=()
[ "$BASELINE" = 1 ] && rows+=("none 0")
for c in $CLIENTS; do
  case $c in aiortc) counts=$COUNTS_AIORTC ;; chromium) counts=$COUNTS_CHROMIUM ;; esac
  for n in $counts; do [ "$n" -gt 0 ] && rows+=("$c $n"); done
done
for rep in $(seq "$REPEATS"); do
  export REP=$rep
  order=$SERVERS
  [ $((rep % 2)) = 0 ] && order=$(echo "$SERVERS" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "") }')
  for row in "${rows[@]}"; do
    # shellcheck disable=SC2086
    set -- $row
    for s in $order; do run_one "$s" "$1" "$2"; done
  done
done

python3 "$HERE/report.py" "$METRICS" >"$OUT/results.md"
echo "wrote $OUT/results.md and $OUT/results.jsonl" >&2
