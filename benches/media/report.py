#!/usr/bin/env python3
"""Renders results.md from bench.sh's results.jsonl (stdlib only).

usage: python3 report.py results.jsonl > results.md
"""
import json
import sys

SERVERS = ("janus", "outpost")


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def pctl(xs, q):
    xs = sorted(x for x in xs if x is not None)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))] if xs else None


def fit(points):
    """Least squares y = a + b*x: (a, b), or None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - b * mx, b


def f(x, d=1):
    return "n/a" if x is None else f"{x:.{d}f}"


def mib(kb):
    return None if kb is None else kb / 1024


def ratio(o, j, d=2):
    return "n/a" if o is None or not j else f"{o / j:.{d}f}"


def window_mean(r, key):
    xs = [(v.get("window") or {}).get(key) for v in r.get("per_viewer") or []]
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def pps(r):
    """RTP packets per second each viewer received over the window (video + audio)."""
    out = []
    for v in r.get("per_viewer") or []:
        w = v.get("window") or {}
        if w.get("seconds") and w.get("videoPackets") is not None:
            out.append(((w.get("videoPackets") or 0) + (w.get("audioPackets") or 0)) / w["seconds"])
    return sum(out) / len(out) if out else None


def render(path):
    fx, idle, rows = {}, [], []
    for line in open(path):
        if not line.strip():
            continue
        j = json.loads(line)
        if "facts" in j:
            fx = j["facts"]
        elif "idle" in j:
            idle.append(j)
        else:
            rows.append(j)
    cores = fx.get("cores") or 0
    reps = max([r["repeat"] for r in rows], default=0)
    out = []
    w = out.append
    s = fx.get("sender") or {}
    w("# outpost vs Janus: WebRTC gateway, side by side\n")
    w(f"- Date: {fx.get('date_utc', '?')}; load average at start {fx.get('load_avg_at_start', '?')}")
    w(f"- Machine: {fx.get('cpu_model', '?')}, {cores} cores, {fx.get('mem_gib', '?')} GiB, {fx.get('os', '?')}, "
      f"kernel {fx.get('kernel', '?')}")
    w(f"- Servers: Janus {fx.get('janus', '?')} (streaming plugin, the Janus harness's conf/), "
      f"{fx.get('outpost_version', '?')} (tree {fx.get('outpost', '?')}), one `rtp` stream `demo`"
      + (" plus -dev's idle `test` stream" if (fx.get("knobs") or {}).get("OUTPOST_DEV") == "1" else "")
      + ", WHEP")
    w(f"- Software: {fx.get('gstreamer', '?')}, {fx.get('chromium', '?')}, node {fx.get('node', '?')}, "
      f"playwright-core {fx.get('playwright_core', '?')}, aiortc {fx.get('aiortc', '?')}")
    w(f"- Workload: the harness's sender.sh, VP8 {s.get('WIDTH')}x{s.get('HEIGHT')}@{s.get('FPS')} "
      f"{int(s.get('VBITRATE') or 0) // 1000} kbit/s CBR, keyframe every {s.get('KEYINT')} frames, "
      f"+ Opus {int(s.get('ABITRATE') or 0) // 1000} kbit/s, RTP over loopback to 127.0.0.1:5004/5002")
    k = fx.get("knobs") or {}
    w(f"- Each row: fresh server + sender; N viewers each past 30 frames; {k.get('SETTLE')} s settle; "
      f"CPU over a {k.get('WINDOW')} s window; servers back to back per row, order alternating by repeat; "
      f"{reps} repeat(s). Private network namespace (127.0.0.1 on lo, 127.0.0.2 on a veth).")
    w("- CPU % is percent of ONE core (utime+stime, /proc/PID/stat). RSS/HWM: VmRSS/VmHWM at "
      "the end of the window. Each is summed over the server's processes (outpost and its outpost-media "
      "process; Janus is one process), so pages both map (libc) count twice. Clients: `aiortc` = one Python process with N peer connections, no decoding "
      "(viewer_aiortc.py); `chromium` = one headless Chromium with N pages decoding and rendering (viewer.mjs).\n")

    keys = []
    for r in rows:
        kk = (r["client"], r["viewers"])
        if kk not in keys:
            keys.append(kk)

    def sel(server, client=None, n=None):
        return [r for r in rows if r["server"] == server and (client is None or r["client"] == client)
                and (n is None or r["viewers"] == n)]

    def med(server, client, n, key):
        return median([r[key] for r in sel(server, client, n)])

    # ---- side by side ------------------------------------------------------------------------
    w(f"## Side by side (median of {reps} repeat(s))\n")
    w("| client | N | runs OK Janus / outpost | CPU % Janus | CPU % outpost | CPU outpost/Janus "
      "| VmRSS MiB Janus | VmRSS MiB outpost | RSS outpost/Janus | VmHWM MiB Janus / outpost "
      "| viewer fps Janus / outpost | first frame ms Janus / outpost (median) |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for client, n in keys:
        okj = sel("janus", client, n)
        oko = sel("outpost", client, n)
        cj, co = med("janus", client, n, "server_cpu_pct"), med("outpost", client, n, "server_cpu_pct")
        rj, ro = mib(med("janus", client, n, "server_rss_kb")), mib(med("outpost", client, n, "server_rss_kb"))
        hj, ho = mib(med("janus", client, n, "server_hwm_kb")), mib(med("outpost", client, n, "server_hwm_kb"))
        fpj = median([window_mean(r, "fps") for r in okj])
        fpo = median([window_mean(r, "fps") for r in oko])
        ffj = median([v.get("firstFrameMs") for r in okj for v in r.get("per_viewer") or []])
        ffo = median([v.get("firstFrameMs") for r in oko for v in r.get("per_viewer") or []])
        w(f"| {client} | {n} | {sum(r['all_viewers_ok'] for r in okj)}/{len(okj)} / "
          f"{sum(r['all_viewers_ok'] for r in oko)}/{len(oko)} | {f(cj, 2)} | {f(co, 2)} | {ratio(co, cj)} "
          f"| {f(rj)} | {f(ro)} | {ratio(ro, rj)} | {f(hj)} / {f(ho)} | {f(fpj)} / {f(fpo)} "
          f"| {f(ffj, 0)} / {f(ffo, 0)} |")
    w("")

    # ---- per-viewer cost -----------------------------------------------------------------------
    w("## Cost per viewer\n")
    w("'b' is the least-squares slope over the runs with N >= 1 (value = a + b*N), i.e. what one more viewer "
      "costs once the stream is being watched; 'a' is then the fixed cost of a watched stream. 'N=0' is the "
      "median of the baseline rows and 'above N=0' = (median at the largest N - N=0) / N, which also spreads "
      "the cost of starting to watch over the viewers. 'us per packet' divides b by the RTP packets (video + "
      "audio) one viewer received per second: the server's RTCP handling, SRTP, sendmsg() and part of the "
      "loopback delivery (softirq charged to the sending task).\n")
    w("| client | server | N range | CPU N=0 % | CPU a % | CPU b % per viewer | CPU above N=0 % per viewer "
      "| packets/s per viewer | server CPU us per packet sent | RSS N=0 MiB | RSS a MiB | RSS b KiB per viewer "
      "| RSS above N=0 KiB per viewer |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    slopes = {}
    for client in [c for c in dict.fromkeys(r["client"] for r in rows) if c != "none"]:
        for server in SERVERS:
            rs = sel(server, client)
            if not rs:
                continue
            cpu = fit([(r["viewers"], r["server_cpu_pct"]) for r in rs])
            mem = fit([(r["viewers"], r["server_rss_kb"]) for r in rs])
            ns = sorted({r["viewers"] for r in rs})
            nmax = ns[-1]
            base_c, base_m = med(server, "none", 0, "server_cpu_pct"), med(server, "none", 0, "server_rss_kb")
            top_c, top_m = med(server, client, nmax, "server_cpu_pct"), med(server, client, nmax, "server_rss_kb")
            above_c = None if base_c is None else (top_c - base_c) / nmax
            above_m = None if base_m is None else (top_m - base_m) / nmax
            p = median([pps(r) for r in rs])
            us = None if not cpu or not p else cpu[1] / 100 * 1e6 / p
            slopes[(client, server)] = (cpu[1] if cpu else None, mem[1] if mem else None, above_c, above_m)
            w(f"| {client} | {server} | {ns[0]}..{nmax} | {f(base_c, 2)} | {f(cpu[0] if cpu else None, 2)} "
              f"| {f(cpu[1] if cpu else None, 3)} | {f(above_c, 3)} | {f(p, 0)} | {f(us)} | {f(mib(base_m))} "
              f"| {f(mib(mem[0]) if mem else None)} | {f(mem[1] if mem else None, 0)} | {f(above_m, 0)} |")
        j, o = slopes.get((client, "janus")), slopes.get((client, "outpost"))
        if j and o:
            w(f"| {client} | outpost/Janus | | | | {ratio(o[0], j[0])} | {ratio(o[2], j[2])} | | | | "
              f"| {ratio(o[1], j[1])} | {ratio(o[3], j[3])} |")
    w("")
    w("With a single N (a smoke run) there is no slope: b and a read n/a.\n")

    # ---- first frame ---------------------------------------------------------------------------
    w("## Time to first frame\n")
    w("Per viewer, all runs pooled. aiortc: from the viewer's start (before its first signalling request) to "
      "its first decodable VP8 frame (a keyframe or later). Chromium: from the page's creation, and from the "
      "start of signalling inside the page (WHEP: createOffer + ICE gathering + POST; Janus: create, attach, "
      "watch, offer, answer), to getStats() first showing framesDecoded > 0 (polled every 25 ms); a WHEP page's "
      "time from creation includes one GET to the endpoint that gives the page its origin (outpost sends no "
      "CORS headers). Signalling = until the answer is applied.\n")
    w("| client | server | viewers | first frame ms median | p90 | min | max | from signalling start, median "
      "| signalling ms median |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for client in [c for c in dict.fromkeys(r["client"] for r in rows) if c != "none"]:
        for server in SERVERS:
            pv = [v for r in sel(server, client) for v in r.get("per_viewer") or []]
            if not pv:
                continue
            ff = [v.get("firstFrameMs") for v in pv]
            fs = [v.get("firstFrameFromSignallingMs") for v in pv]
            sg = [v.get("signallingMs") for v in pv]
            w(f"| {client} | {server} | {len(pv)} | {f(median(ff), 0)} | {f(pctl(ff, 0.9), 0)} "
              f"| {f(min([x for x in ff if x is not None], default=None), 0)} "
              f"| {f(max([x for x in ff if x is not None], default=None), 0)} "
              f"| {f(median(fs), 0) if any(x is not None for x in fs) else '-'} | {f(median(sg), 0)} |")
    w("")

    # ---- latency -------------------------------------------------------------------------------
    lat = [r for r in rows if r.get("latency")]
    w("## Added latency (RTP in -> SRTP out)\n")
    if not lat:
        w("Not measured in this run (LATENCY=0, or no aiortc row with N = LATENCY_N).\n")
    else:
        w("latency.py captured the loopback traffic for a few seconds after the window of the aiortc row "
          "with one viewer and matched each frame the sender sent to the frame the server sent the viewer "
          "(SRTP keeps the RTP header in clear; frames matched by payload size, see latency.py). "
          "'frame' = last packet out - last packet in; 'first packet' = first out - first in. Kernel "
          "capture timestamps on the sending side of loopback. Medians over repeats of each run's median.\n")
        w("| server | kind | frames matched | frame latency ms median | p95 | max | first packet ms median "
          "| packets per frame in / out |")
        w("|---|---|---:|---:|---:|---:|---:|---:|")
        for server in SERVERS:
            rs = [r for r in lat if r["server"] == server]
            for kind in ("video", "audio"):
                ms = [(r["latency"].get(kind) or {}) for r in rs]
                ms = [m for m in ms if m.get("matched")]
                if not ms:
                    if rs:
                        w(f"| {server} | {kind} | 0 | n/a | | | | |")
                    continue
                g = lambda a, b: median([m[a][b] for m in ms])
                ties = max(m["fit"].get("equally_good_shifts", 0) for m in ms)
                w(f"| {server} | {kind} | {sum(m['matched'] for m in ms)} | {f(g('latency_ms', 'median'), 2)} "
                  f"| {f(g('latency_ms', 'p95'), 2)} | {f(max(m['latency_ms']['max'] for m in ms), 2)} "
                  f"| {f(g('first_packet_ms', 'median'), 2)} "
                  f"| {f(median([m['packets_per_frame_in'] for m in ms]), 2)} / "
                  f"{f(median([m['packets_per_frame_out'] for m in ms]), 2)}"
                  + (" (equal-size frames: smallest fitting latency taken)" if ties else "") + " |")
        w("")

    # ---- idle ----------------------------------------------------------------------------------
    if idle:
        w("## Idle: the server alone (no sender, no viewer)\n")
        w("Started, settled, then 5 s of CPU; VmRSS/VmHWM at the end. `outpost` = one unwatched `rtp` stream "
          "(no -dev); `outpost-dev` = the same with -dev, which adds its `test` stream (unwatched too).\n")
        w("| run | streams | VmRSS MiB | VmHWM MiB | threads | CPU % |")
        w("|---|---|---:|---:|---:|---:|")
        for i in idle:
            st = ", ".join(i["streams"]) if i.get("streams") else ("1 mountpoint" if i["server"] == "janus" else "?")
            w(f"| {i['idle']} | {st} | {f(mib(i['rss_kb']))} | {f(mib(i['hwm_kb']))} | {i['threads']} "
              f"| {f(i['cpu_pct'], 2)} |")
        w("")

    # ---- all runs -------------------------------------------------------------------------------
    w("## All runs\n")
    w("| rep | client | N | server | OK | CPU % | VmRSS MiB | VmHWM MiB | threads | sender CPU % "
      "| viewer CPU % | viewer PSS MiB | system busy % of all cores | mean fps | video lost | pkts/s per viewer "
      "| outpost /v1/streams: state, viewers, fps |")
    w("|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in sorted(rows, key=lambda r: (r["repeat"], keys.index((r["client"], r["viewers"])), r["server"])):
        pv = r.get("per_viewer") or []
        lost = sum(((v.get("window") or {}).get("videoLost") or 0) for v in pv) if pv else None
        st = r.get("outpost_stream")
        sts = f"{st.get('State')}, {st.get('Viewers')}, {st.get('MeasuredFps')}" if st else "-"
        w(f"| {r['repeat']} | {r['client']} | {r['viewers']} | {r['server']} "
          f"| {'yes' if r['all_viewers_ok'] else 'NO: ' + (r.get('error') or '?')} | {f(r['server_cpu_pct'], 2)} "
          f"| {f(mib(r['server_rss_kb']))} | {f(mib(r['server_hwm_kb']))} | {r['server_threads']} "
          f"| {f(r['sender_cpu_pct'])} | {f(r['viewer_cpu_pct'])} | {f(mib(r['viewer_pss_kb']))} "
          f"| {f(r['system_busy_pct_of_all_cores'])} | {f(window_mean(r, 'fps'))} "
          f"| {lost if lost is not None else '-'} | {f(pps(r), 0)} | {sts} |")
    w("")

    w("## Reading these numbers\n")
    w("- The box has 2 cores and may be shared: 'system busy' shows what else ran. With tick-based CPU "
      "accounting a process near 1 % gets only a few dozen samples per window, so figures below ~2 % carry "
      "roughly +-15 % noise; compare medians of several repeats.")
    w("- The viewers run on the same cores. Chromium pages cost ~10 % of a core each (decode + compositing), "
      "so the aiortc rows give the server-side slope; the Chromium rows check that real browsers play.")
    w("- N=0 is not the same thing for both: Janus's mountpoint always listens on 5004/5002 and receives "
      "(then drops) the sender's packets; outpost stops a stream's pipeline while nobody watches, so nothing "
      "listens there (the kernel answers the sender with ICMP port-unreachable) and its N=0 CPU is its idle "
      "CPU. The slopes include the N=0 rows, the 'above N=0' column makes the difference explicit.")
    w("- The servers do not send the same packets: Janus forwards the sender's RTP packets as they are, "
      "outpost re-assembles whole frames (rtpjitterbuffer + depayloader in GStreamer) and re-packetizes them "
      "with str0m; 'packets/s per viewer' shows each one's count.")
    w("- Loopback delivery runs as softirq in the sending task, so part of putting each packet into a viewer's "
      "socket is charged to the server (and part of RTCP into the server to the viewer); it is the same for "
      "both servers with the same client.\n")

    cmd = next((r.get("chromium_cmdline") for r in rows if r.get("chromium_cmdline")), None)
    if cmd:
        w("## Effective Chromium command line (flags only)\n")
        w("```")
        w(cmd)
        w("```\n")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print(render(sys.argv[1]))
