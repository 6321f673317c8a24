#!/usr/bin/env python3
"""Exec to READY=1: starts `outpost agent ARGS...` with NOTIFY_SOCKET set, as systemd starts a
Type=notify service, and times from just before the fork+exec to the READY=1 datagram; then
stops it with SIGTERM (and times STOPPING=1 to exit). Repeats N times; prints each start and
the median, minimum and maximum (ms).

usage: ready.py N -- outpost agent ARGS...
"""
import os, socket, statistics, subprocess, sys, tempfile, time


def once(cmd, sock, path):
    env = dict(os.environ, NOTIFY_SOCKET=path)
    env.pop("WATCHDOG_USEC", None)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock.settimeout(10)
        while True:
            msg = sock.recv(4096).decode()
            if "READY=1" in msg.splitlines():
                ready = (time.monotonic() - t0) * 1000
                break
        t1 = time.monotonic()
        p.terminate()
        p.wait(timeout=20)
        stop = (time.monotonic() - t1) * 1000
        if p.returncode != 0:
            raise SystemExit("agent exited %d" % p.returncode)
        return ready, stop
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def main():
    if "--" not in sys.argv or len(sys.argv) < 4:
        raise SystemExit(__doc__)
    n = int(sys.argv[1])
    cmd = sys.argv[sys.argv.index("--") + 1:]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        runs = [once(cmd, sock, path) for _ in range(n)]
    ready = [r for r, _ in runs]
    stop = [s for _, s in runs]
    print("exec to READY=1, ms:", " ".join("%.1f" % r for r in ready))
    print("median %.1f ms, min %.1f, max %.1f (n=%d); SIGTERM to exit median %.1f ms"
          % (statistics.median(ready), min(ready), max(ready), n, statistics.median(stop)))


main()
