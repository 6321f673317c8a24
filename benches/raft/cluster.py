#!/usr/bin/env python3
"""Helpers of benches/raft/bench.sh for a three-member cluster of outpost or etcd on loopback.

Members are numbered 2, 3 and 4: outpost's member N serves HTTP on 127.0.8.N:8500 (its Raft
address, which /v1/status/leader names, is 127.0.8.N:8300); etcd's member N serves clients
(and its HTTP/JSON gateway) on 127.0.9.N:2379. This script starts and stops nothing: it
reads state over HTTP and, for `failover`, sends SIGKILL to a PID it is given.

usage:
  cluster.py ready SYSTEM [WITHIN_S]
      Waits (at most WITHIN_S, default 60) until all three members agree on one leader and
      see three members (outpost: the same non-empty /v1/status/leader on all, three entries
      in /v1/status/peers; etcd: the same non-zero leader in /v3/maintenance/status, three
      members in /v3/cluster/member/list), then writes one key through the leader. Prints
      `LEADER FOLLOWER` as HOST:PORT of their client addresses.
  cluster.py failover SYSTEM N=PID N=PID N=PID
      Finds the leader, SIGKILLs its PID, polls the two others every POLL_S until both name
      the same new leader, then writes through it until a write succeeds. Prints one JSON
      object: killed, agree_s (kill to agreement), write_s (kill to the first write done).
  cluster.py register SYSTEM HOST:PORT N CONNS
      N service registrations over CONNS keep-alive connections: outpost
      `PUT /v1/catalog/register` (node k//100 of N/100, service k%100), etcd the same JSON
      body as the value of key services/<node>/<service>. Prints a JSON object.
  cluster.py rss PID...
      Prints a JSON object: each PID's VmRSS and RssAnon (KiB) and their medians.
"""

import base64
import http.client
import json
import os
import signal
import statistics
import sys
import threading
import time
import urllib.request

MEMBERS = (2, 3, 4)
POLL_S = 0.01  # fail-over polling interval
IO_TIMEOUT = 2.0  # seconds for one status request
FAILOVER_WITHIN = 60.0  # seconds for a new leader and a write after a kill


def client(system, n):
    return f"127.0.8.{n}:8500" if system == "outpost" else f"127.0.9.{n}:2379"


def call(addr, method, path, body=None, timeout=IO_TIMEOUT):
    req = urllib.request.Request(f"http://{addr}{path}", method=method,
                                 data=body.encode() if isinstance(body, str) else body)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def status(system, n):
    """(leader member number or None, this member's id, the member count it sees)."""
    addr = client(system, n)
    if system == "outpost":
        leader = json.loads(call(addr, "GET", "/v1/status/leader")[1])
        peers = json.loads(call(addr, "GET", "/v1/status/peers")[1])
        lead = int(leader.split(":")[0].rsplit(".", 1)[1]) if leader else None
        return lead, n, len(peers)
    st = json.loads(call(addr, "POST", "/v3/maintenance/status", "{}")[1])
    return st.get("leader", "0"), st["header"]["member_id"], None


def etcd_member_count(n):
    return len(json.loads(call(client("etcd", n), "POST", "/v3/cluster/member/list", "{}")[1])["members"])


def write(system, n, key, value="x"):
    """One write through member n; True when it is done."""
    addr = client(system, n)
    try:
        if system == "outpost":
            code, body = call(addr, "PUT", f"/v1/kv/{key}", value)
            return code == 200 and body == b"true"
        b = {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value.encode()).decode()}
        code, _ = call(addr, "POST", "/v3/kv/put", json.dumps(b))
        return code == 200
    except OSError:
        return False


def leader_of(system, members):
    """The member number all `members` agree leads, or None. etcd: ids mapped to numbers."""
    seen = {}
    ids = {}
    for n in members:
        lead, me, count = status(system, n)
        ids[me] = n
        if system == "outpost" and count != 3:
            return None
        seen[n] = lead
    leads = set(seen.values())
    if len(leads) != 1:
        return None
    (lead,) = leads
    if system == "outpost":
        return lead
    return ids.get(lead) if lead not in ("0", 0, None) else None


def ready(system, within=60.0):
    end = time.monotonic() + within
    last = "no answer"
    while time.monotonic() < end:
        try:
            lead = leader_of(system, MEMBERS)
            if lead is not None and (system == "outpost" or all(etcd_member_count(n) == 3 for n in MEMBERS)):
                if write(system, lead, "bench-ready"):
                    follower = next(n for n in MEMBERS if n != lead)
                    print(client(system, lead), client(system, follower))
                    return
                last = f"a write through the leader {lead} failed"
            else:
                last = "no agreed leader with three members"
        except (OSError, ValueError, KeyError) as e:
            last = repr(e)
        time.sleep(0.1)
    sys.exit(f"cluster.py: {system} not ready within {within:.0f} s: {last}")


def failover(system, pids):
    lead = None
    end = time.monotonic() + 30
    while lead is None and time.monotonic() < end:
        try:
            lead = leader_of(system, MEMBERS)
        except (OSError, ValueError, KeyError):
            pass
        if lead is None:
            time.sleep(0.05)
    if lead is None:
        sys.exit(f"cluster.py: {system}: no agreed leader before the kill")
    _, old_id, _ = status(system, lead)
    others = [n for n in MEMBERS if n != lead]
    t0 = time.monotonic()
    os.kill(pids[lead], signal.SIGKILL)
    end = t0 + FAILOVER_WITHIN
    agree = None
    new = None
    while time.monotonic() < end:
        try:
            if agree is None:
                st = [status(system, n) for n in others]
                leads = {s[0] for s in st}
                if len(leads) == 1:
                    (l,) = leads
                    if system == "outpost" and l is not None and l != lead:
                        new = l
                    elif system == "etcd" and l not in ("0", old_id, None):
                        new = {s[1]: n for s, n in zip(st, others)}.get(l)
                    if new is not None:
                        agree = time.monotonic() - t0
            if agree is not None and write(system, new, f"bench-failover/{int(t0 * 1000)}"):
                print(json.dumps({"killed": lead, "new_leader": new, "agree_s": round(agree, 4),
                                  "write_s": round(time.monotonic() - t0, 4)}))
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(POLL_S)
    sys.exit(f"cluster.py: {system}: after killing member {lead}, "
             + ("no write succeeded" if agree is not None else "no new leader agreed")
             + f" within {FAILOVER_WITHIN:.0f} s")


def registration(k):
    node, svc = k // 100, k % 100
    name = f"node-{node:04d}"
    body = json.dumps({"Node": name, "Address": f"10.{node // 250}.{node % 250}.1",
                       "Service": {"ID": f"svc-{svc:03d}", "Service": f"svc-{svc:03d}", "Tags": ["bench", "v1"],
                                   "Port": 8000 + svc, "Meta": {"version": "1"}}},
                      separators=(",", ":"))
    return f"services/{name}/svc-{svc:03d}", body


def register(system, addr, n, conns):
    host, port = addr.rsplit(":", 1)
    lock = threading.Lock()
    todo = iter(range(n))
    errors = []
    sizes = []

    def worker():
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            with lock:
                k = next(todo, None)
            if k is None or errors:
                break
            key, body = registration(k)
            if system == "outpost":
                c.request("PUT", "/v1/catalog/register", body)
            else:
                b = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                                "value": base64.b64encode(body.encode()).decode()})
                c.request("POST", "/v3/kv/put", b, {"Content-Type": "application/json"})
            r = c.getresponse()
            got = r.read()
            if r.status != 200 or (system == "outpost" and got != b"true"):
                with lock:
                    errors.append(f"registration {k}: {r.status} {got[:200]!r}")
                break
            if k < 100:
                with lock:
                    sizes.append(len(body))
        c.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        sys.exit(f"cluster.py: {system}: {errors[0]}")
    print(json.dumps({"n": n, "seconds": round(time.monotonic() - t0, 3),
                      "body_bytes": round(statistics.mean(sizes)) if sizes else 0}))


def rss(pids):
    each = []
    for pid in pids:
        f = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
        each.append({"pid": pid, "rss_kib": int(f["VmRSS"].split()[0]), "anon_kib": int(f["RssAnon"].split()[0])})
    print(json.dumps({"median_rss_kib": statistics.median(e["rss_kib"] for e in each),
                      "median_anon_kib": statistics.median(e["anon_kib"] for e in each), "each": each}))


def main(argv):
    if len(argv) < 2 or argv[1] not in ("ready", "failover", "register", "rss"):
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "rss":
        return rss([int(p) for p in args])
    if not args or args[0] not in ("outpost", "etcd"):
        sys.exit(__doc__)
    system = args[0]
    if cmd == "ready":
        return ready(system, float(args[1]) if len(args) > 1 else 60.0)
    if cmd == "failover":
        pids = {int(a.split("=")[0]): int(a.split("=")[1]) for a in args[1:]}
        if sorted(pids) != list(MEMBERS):
            sys.exit(__doc__)
        return failover(system, pids)
    return register(system, args[1], int(args[2]), int(args[3]))


if __name__ == "__main__":
    main(sys.argv)
