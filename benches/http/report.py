#!/usr/bin/env python3
"""The markdown table of one bench.sh run: medians of its wrk rounds and its watcher results.

usage: report.py RESULTS_DIR DURATION REPS INSTANCES
"""

import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

RATIO_GOAL = 0.70
KIB_PER_WATCHER_GOAL = 4.0


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    osname = ""
    try:
        with open("/etc/os-release") as f:
            osname = dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l).get("PRETTY_NAME", "").strip('"')
    except OSError:
        pass
    return f"{os.cpu_count()} × {cpu}{mem}, {osname}, kernel {platform.release()}"


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def main(out, duration, reps, instances):
    rows = list(csv.DictReader(open(os.path.join(out, "wrk.tsv")), delimiter="\t"))
    bad = [r for r in rows if r["non2xx"] != "0" or r["errors"]]
    cells = {}
    for r in rows:
        cells.setdefault((r["path"], int(r["conns"])), {}).setdefault(r["server"], []).append(r)
    sizes = {}
    for line in open(os.path.join(out, "sizes.tsv")):
        server, path, _code, body, head = line.rstrip("\n").split("\t")
        sizes[(server, path)] = (int(body), int(head))

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"### HTTP: outpost against a minimal hyper server on the same stack, same run ({now})\n")
    print(f"Machine: {machine()}. {tool_version(['wrk', '-v']).split(' Copyright')[0]}.")
    print(f"Command: `benches/http/bench.sh` — wrk `-t1 --latency`, {duration} s runs, {reps} interleaved "
          f"rounds, each server pinned to CPU 0 and wrk to CPU 1; cells are medians. `web` has {instances} "
          f"instances; the peer (`examples/hyper_peer.rs`: hyper 1 + smol-hyper on one `LocalExecutor`) "
          f"serves outpost's own replies, captured with curl, so both send the same bytes: "
          + "; ".join(f"`{p}` {b} B body + {h} B headers" for (s, p), (b, h) in sorted(sizes.items()) if s == "outpost")
          + ".\n")
    print("| request | connections | outpost req/s | peer req/s | ratio (goal ≥ 0.70) | outpost p99 | peer p99 |")
    print("|---|---|---|---|---|---|---|")
    for (path, conns), by in sorted(cells.items()):
        med = {s: (statistics.median(float(r["rps"]) for r in rs), statistics.median(float(r["p99_ms"]) for r in rs))
               for s, rs in by.items()}
        (orps, op99), (prps, pp99) = med["outpost"], med["peer"]
        ratio = orps / prps
        verdict = "met" if ratio >= RATIO_GOAL else "**not met**"
        print(f"| `GET {path}` | {conns} | {orps:,.0f} | {prps:,.0f} | {ratio:.2f} {verdict} | "
              f"{op99:.3f} ms | {pp99:.3f} ms |")
    try:
        _, o, p = open(os.path.join(out, "rss.tsv")).read().split()
        print(f"\nRSS after the load: outpost {int(o) / 1024:.1f} MiB, peer {int(p) / 1024:.1f} MiB.")
    except (OSError, ValueError):
        pass
    if bad:
        print(f"\n**{len(bad)} wrk runs saw non-2xx replies or socket errors**: "
              + "; ".join(f"{r['server']} {r['path']} c{r['conns']} r{r['rep']}: {r['non2xx']} non-2xx {r['errors']}"
                          for r in bad))

    ws = [json.loads(l) for l in open(os.path.join(out, "watchers.jsonl"))]
    print("\nBlocking queries (`GET /v1/kv/bench?index=<current>&wait=5m`), each count against a fresh server; "
          "held = `ss` shows them all established on the server with nothing unread and none answered:\n")
    print("| watchers | outpost RSS idle → held | outpost KiB/watcher (goal < 4) | peer RSS idle → held | "
          "peer KiB/watcher | outpost: one write returns all |")
    print("|---|---|---|---|---|---|")
    by_n = {}
    for w in ws:
        by_n.setdefault(w["result"]["n"], {})[w["server"]] = w["result"]
    for n, by in sorted(by_n.items()):
        o, p = by.get("outpost"), by.get("peer")

        def rss(r):
            return f"{r['rss_idle_kib'] / 1024:.1f} → {r['rss_held_kib'] / 1024:.1f} MiB" if r else "–"

        def per(r, goal):
            if not r:
                return "–"
            v = r["kib_per_watcher"]
            held = "" if r["held"] else " (**not all held**)"
            mark = (" met" if v < KIB_PER_WATCHER_GOAL else " **not met**") if goal else ""
            return f"{v:.2f}{mark}{held}"

        if o and o.get("returned_with_new_value") is not None:
            ret = f"{o['returned_with_new_value']:,}/{n:,} in {o['last_return_s'] * 1000:.0f} ms"
        else:
            ret = "–"
        print(f"| {n:,} | {rss(o)} | {per(o, True)} | {rss(p)} | {per(p, False)} | {ret} |")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
