#!/usr/bin/env python3
"""The markdown table of one benches/raft/bench.sh run: medians over its rounds.

usage: report.py RESULTS_DIR COMMAND DURATION VALUE_BYTES ETCD_VERSION
"""

import csv
import datetime
import os
import platform
import statistics
import sys


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


def rows(out, name):
    with open(os.path.join(out, name)) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def med(values):
    values = list(values)
    return statistics.median(values) if values else None


def fmt(v, digits):
    return "–" if v is None else f"{v:,.{digits}f}"


def main(out, command, duration, value_bytes, etcd_version):
    writes = rows(out, "writes.tsv")
    fails = rows(out, "failover.tsv")
    rss = rows(out, "rss.tsv")
    reps = sorted({r["rep"] for r in writes + fails + rss})

    table = []  # (what, outpost, etcd, digits, goal): goal "higher", "lower", "third" or None

    points = sorted({(r["via"] != "leader", int(r["writers"])) for r in writes})
    for follower, w in points:
        via = "via a follower" if follower else "via the leader"
        sel = {s: [r for r in writes if r["system"] == s and int(r["writers"]) == w and (r["via"] != "leader") == follower]
               for s in ("outpost", "etcd")}
        rate = {s: med(int(r["ok"]) / float(r["seconds"]) for r in rs if float(r["seconds"]) > 0) for s, rs in sel.items()}
        p50 = {s: med(float(r["p50_ms"]) for r in rs) for s, rs in sel.items()}
        p99 = {s: med(float(r["p99_ms"]) for r in rs) for s, rs in sel.items()}
        p999 = {s: med(float(r["p999_ms"]) for r in rs) for s, rs in sel.items()}
        worst = {s: max((float(r["max_ms"]) for r in rs), default=None) for s, rs in sel.items()}
        cpu = {s: med(int(r["cpu_ms"]) * 1000 / int(r["ok"]) for r in rs if int(r["ok"]) > 0) for s, rs in sel.items()}
        goal = not follower
        table.append((f"writes/s, {w} writer{'s' if w > 1 else ''} {via}", rate["outpost"], rate["etcd"], 0,
                      "higher" if goal else None))
        table.append((f"p50 ms, {w} writer{'s' if w > 1 else ''} {via}", p50["outpost"], p50["etcd"], 2,
                      "lower" if goal else None))
        table.append((f"p99 ms, {w} writer{'s' if w > 1 else ''} {via}", p99["outpost"], p99["etcd"], 2,
                      "lower" if goal else None))
        table.append((f"p99.9 ms, {w} writer{'s' if w > 1 else ''} {via}", p999["outpost"], p999["etcd"], 2, None))
        table.append((f"slowest write ms (of all rounds), {w} writer{'s' if w > 1 else ''} {via}", worst["outpost"],
                      worst["etcd"], 1, None))
        table.append((f"CPU µs per write (3 servers), {w} writer{'s' if w > 1 else ''} {via}", cpu["outpost"],
                      cpu["etcd"], 0, None))

    kills = {s: [r for r in fails if r["system"] == s] for s in ("outpost", "etcd")}
    n_kills = max(len(v) for v in kills.values()) if fails else 0
    table.append((f"fail-over: kill → two others agree on a new leader, s (median of {n_kills})",
                  med(float(r["agree_s"]) for r in kills["outpost"]), med(float(r["agree_s"]) for r in kills["etcd"]),
                  3, None))
    table.append(("fail-over: kill → a write through the new leader done, s",
                  med(float(r["write_s"]) for r in kills["outpost"]), med(float(r["write_s"]) for r in kills["etcd"]),
                  3, None))

    by = {s: [r for r in rss if r["system"] == s] for s in ("outpost", "etcd")}
    services = rss[0]["services"] if rss else "?"
    body = rss[0]["body_bytes"] if rss else "?"
    mib = lambda rs, col: med(int(float(r[col])) / 1024 for r in rs)
    table.append(("RSS per server idle, MiB (median of the 3)", mib(by["outpost"], "idle_rss_kib"),
                  mib(by["etcd"], "idle_rss_kib"), 1, "third"))
    table.append((f"RSS per server after {int(services):,} services, MiB", mib(by["outpost"], "loaded_rss_kib"),
                  mib(by["etcd"], "loaded_rss_kib"), 1, "third"))
    table.append(("  of which anonymous (RssAnon), idle → after, MiB", None, None, 1, "anon"))
    table.append((f"{int(services):,} registrations (16 connections), s", med(float(r["register_s"]) for r in by["outpost"]),
                  med(float(r["register_s"]) for r in by["etcd"]), 1, None))

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"### Raft KV: outpost against {etcd_version.strip()}, three members each on loopback, same run ({now})\n")
    print(f"Machine: {machine()}.")
    try:
        before = open(os.path.join(out, "loadavg-before")).read().split()[:3]
        after = open(os.path.join(out, "loadavg-after")).read().split()[:3]
        print(f"Load average (1/5/15 min) before: {' '.join(before)}, after: {' '.join(after)}.")
    except OSError:
        pass
    print(f"Command: `{command}` — {len(reps)} round(s), the systems alternating at every measurement, each on "
          f"fresh clusters; writes: `examples/kv_load.rs` (closed loop, one thread, keep-alive connections, every "
          f"latency kept as measured), {duration} s per point after a 1 s warm-up, "
          f"a new key per write, {value_bytes}-byte values (outpost `PUT /v1/kv/<key>`, etcd `POST /v3/kv/put` "
          f"on its HTTP/JSON gateway); fail-over: `kill -9` of the leader, 10 ms polls; RSS: VmRSS of each "
          f"server, median of the three, etcd's keys carrying outpost's registration bodies ({body} B). "
          f"Cells are medians over the rounds.\n")
    print("| measure | outpost | etcd | outpost/etcd | target |")
    print("|---|---|---|---|---|")
    for what, o, e, digits, goal in table:
        if goal == "anon":
            a = {s: (mib(by[s], "idle_anon_kib"), mib(by[s], "loaded_anon_kib")) for s in ("outpost", "etcd")}
            print(f"| {what} | {fmt(a['outpost'][0], 1)} → {fmt(a['outpost'][1], 1)} | "
                  f"{fmt(a['etcd'][0], 1)} → {fmt(a['etcd'][1], 1)} | | |")
            continue
        ratio = o / e if o is not None and e not in (None, 0) else None
        verdict = ""
        if ratio is not None and goal == "higher":
            verdict = "≥ 1: " + ("met" if ratio >= 1 else "**not met**")
        elif ratio is not None and goal == "lower":
            verdict = "≤ 1: " + ("met" if ratio <= 1 else "**not met**")
        elif ratio is not None and goal == "third":
            verdict = "< 0.33: " + ("met" if ratio < 1 / 3 else "**not met**")
        print(f"| {what} | {fmt(o, digits)} | {fmt(e, digits)} | {fmt(ratio, 2)} | {verdict} |")

    bad = [r for r in writes if int(r["failed"]) > 0]
    total = {s: sum(int(r["ok"]) for r in writes if r["system"] == s) for s in ("outpost", "etcd")}
    print(f"\nWrites done: outpost {total['outpost']:,}, etcd {total['etcd']:,}.", end="")
    if bad:
        print(f" **{len(bad)} load point(s) saw failed writes**: "
              + "; ".join(f"{r['system']} {r['writers']} via {r['via']} round {r['rep']}: {r['failed']} failed, "
                          f"first: {r['first_failure']}" for r in bad))
    else:
        print(" None failed.")
    if "ETCD_FLAGS" not in command:
        print("Elections: outpost's followers campaign after 0.5 to 1 s without a leader (5 to 10 ticks of "
              "100 ms), etcd's after 1 to 2 s (its defaults: --election-timeout 1000, --pre-vote false).")
    try:
        stops = rows(out, "stops.tsv")
    except OSError:
        stops = []
    if stops:
        parts = []
        for s in ("outpost", "etcd"):
            st = [r for r in stops if r["cluster"].startswith(s + "-")]
            if st:
                killed = sum(1 for r in st if r["how"] == "kill")
                parts.append(f"{s} median {med(float(r['seconds']) for r in st):.2f} s, max "
                             f"{max(float(r['seconds']) for r in st):.2f} s, {killed} of {len(st)} still up after 5 s "
                             f"(SIGKILLed)")
        print("Teardown, SIGTERM to all three members at once until each exits: " + "; ".join(parts) + ".")
    for s in ("outpost", "etcd"):
        each = ", ".join(f"{float(r['agree_s']):.2f}/{float(r['write_s']):.2f}" for r in kills[s])
        if each:
            print(f"{s} fail-overs (agree/write, s): {each}.")


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
