#!/usr/bin/env python3
"""Parks N blocking queries on one HTTP server and measures what they cost it.

usage: watchers.py --port PORT --pid PID --n N --path /v1/kv/bench [--write VALUE]
                   [--watch-port PORT --tls]

The watchers connect to --watch-port (default --port), over TLS with --tls (certificate not
verified: loopback benchmark); the index read and the write use plain HTTP on --port.

1. reads PATH once for its X-Consul-Index;
2. reads the server's RSS (/proc/PID/status VmRSS) idle;
3. opens N connections (at most CONNECTING at a time), each sending
   `GET PATH?index=<index>&wait=5m`, and checks they are held: `ss` shows N established
   server-side sockets with nothing left unread (Recv-Q 0) and an empty accept queue, and no
   reply has come back;
4. reads the RSS again: (held - idle) / N is the cost of one parked watcher;
5. with --write VALUE: PUTs VALUE to PATH once and waits (at most RETURN_TIMEOUT) until every
   watcher has its reply, a 200 carrying the new value.

Prints one JSON object. Exits 1 if the watchers were not all held, or (with --write) did not
all return the new value in time. Bounded: N connections, every wait has a deadline.
"""

import argparse
import asyncio
import base64
import json
import resource
import ssl
import subprocess
import sys
import time

CONNECTING = 256  # connections being opened at once (the listen backlog is finite)
HELD_TIMEOUT = 60.0  # seconds for all N to be accepted and read by the server
SETTLE = 1.0  # seconds between "all held" and the RSS reading
RETURN_TIMEOUT = 30.0  # seconds for all N to return after the write
IO_TIMEOUT = 10.0  # seconds for any single non-blocking request


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def server_sockets(port):
    """(established server-side sockets, their summed Recv-Q, the listener's Recv-Q)."""
    est = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    unread = sum(int(line.split()[0]) for line in est if line.strip())
    lst = subprocess.run(["ss", "-Hltn", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    backlog = sum(int(line.split()[1]) for line in lst if line.strip())
    return len(est), unread, backlog


async def read_reply(reader):
    """(status, headers dict, body) of one HTTP/1.1 reply with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def request(port, method, target, body=b""):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), IO_TIMEOUT)
    try:
        writer.write(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        return await asyncio.wait_for(read_reply(reader), IO_TIMEOUT)
    finally:
        writer.close()


class Watcher:
    def __init__(self):
        self.writer = None
        self.reply = None  # (status, headers, body)
        self.at = None  # monotonic time the reply arrived
        self.error = None


async def watch(port, target, gate, w, tls):
    try:
        async with gate:
            reader, w.writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=tls), IO_TIMEOUT)
            w.writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            await w.writer.drain()
        w.reply = await read_reply(reader)
        w.at = time.monotonic()
    except Exception as e:  # reported in the result
        w.error = f"{type(e).__name__}: {e}"


async def main(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < a.n + 64:
        sys.exit(f"watchers.py: the descriptor limit {hard} is below {a.n} watchers; raise ulimit -n")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    status, headers, _ = await request(a.port, "GET", a.path)
    index = int(headers.get("x-consul-index", "0"))
    if status != 200 or index <= 0:
        sys.exit(f"watchers.py: GET {a.path} gave {status} with X-Consul-Index {index}: expected 200 and an index")
    rss_idle = rss_kib(a.pid)
    watch_port = a.watch_port or a.port
    tls = None
    if a.tls:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    base = server_sockets(watch_port)[0]

    target = f"{a.path}?index={index}&wait=5m"
    gate = asyncio.Semaphore(CONNECTING)
    ws = [Watcher() for _ in range(a.n)]
    t0 = time.monotonic()
    tasks = [asyncio.create_task(watch(watch_port, target, gate, w, tls)) for w in ws]

    # Held: all accepted and read by the server, none answered.
    deadline = time.monotonic() + HELD_TIMEOUT
    while True:
        await asyncio.sleep(0.25)
        est, unread, backlog = server_sockets(watch_port)
        errors = [w.error for w in ws if w.error]
        if errors or (est - base >= a.n and unread == 0 and backlog == 0) or time.monotonic() > deadline:
            break
    opened_s = time.monotonic() - t0
    await asyncio.sleep(SETTLE)
    est, unread, backlog = server_sockets(watch_port)
    rss_held = rss_kib(a.pid)
    answered_early = sum(1 for w in ws if w.reply is not None)
    errors = [w.error for w in ws if w.error]
    result = {
        "n": a.n,
        "rss_idle_kib": rss_idle,
        "rss_held_kib": rss_held,
        "kib_per_watcher": round((rss_held - rss_idle) / a.n, 2),
        "established": est - base,
        "unread_bytes": unread,
        "accept_backlog": backlog,
        "answered_before_write": answered_early,
        "open_s": round(opened_s, 2),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }
    held = est - base >= a.n and unread == 0 and backlog == 0 and answered_early == 0 and not errors
    result["held"] = held

    ok = held
    if a.write is not None and held:
        value = a.write.encode()
        t_write = time.monotonic()
        status, _, body = await request(a.port, "PUT", a.path, value)
        if status != 200 or body.strip() != b"true":
            sys.exit(f"watchers.py: PUT {a.path} gave {status} {body!r}: expected 200 true")
        await asyncio.wait(tasks, timeout=RETURN_TIMEOUT)
        want = base64.b64encode(value)
        got = [w for w in ws if w.reply is not None and w.reply[0] == 200 and want in w.reply[2]]
        result["returned_with_new_value"] = len(got)
        result["last_return_s"] = round(max(w.at for w in got) - t_write, 3) if got else None
        ok = len(got) == a.n
    for w in ws:
        if w.writer is not None:
            w.writer.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--write", help="value to PUT once all are held; then all must return it")
    p.add_argument("--watch-port", type=int, help="the port the watchers use (default --port)")
    p.add_argument("--tls", action="store_true", help="watchers connect with TLS")
    sys.exit(asyncio.run(main(p.parse_args())))
