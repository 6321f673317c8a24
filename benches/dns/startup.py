#!/usr/bin/env python3
"""Start-up to first answer: starts `outpost agent ARGS...`, sends one DNS query every
millisecond to 127.0.0.1:PORT and reports the time until the first NOERROR answer.
Repeats N times and prints the median (ms).

usage: startup.py N PORT QNAME -- outpost agent ARGS...
"""
import socket, statistics, struct, subprocess, sys, time

def query(qname, qid):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in qname.strip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)

def once(port, qname, cmd):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        qid = 1
        while time.monotonic() - t0 < 10:
            s.sendto(query(qname, qid), ("127.0.0.1", port))
            time.sleep(0.001)
            try:
                d = s.recv(4096)
                if len(d) >= 4 and d[3] & 0x0F == 0:
                    return (time.monotonic() - t0) * 1000
            except (BlockingIOError, ConnectionRefusedError):
                pass
            qid = (qid + 1) & 0xFFFF
        raise SystemExit("no answer within 10 s")
    finally:
        p.terminate()
        p.wait()

def main():
    n, port, qname = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    times = [once(port, qname, cmd) for _ in range(n)]
    print("startup_ms median=%.1f min=%.1f max=%.1f n=%d" % (statistics.median(times), min(times), max(times), n))

main()
