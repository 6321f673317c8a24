#!/usr/bin/env python3
"""The Python Consul client (py-consul) against a running outpost agent, as a program using
Consul would call it: agent, catalog, health, status and KV endpoints, with asserts on what
comes back, and blocking queries that must wake on a write and time out otherwise.

usage: test_client.py HOST:PORT [--keep-going]

Expects a fresh `outpost agent -dev` (its example services: `web` tagged `rails` on port 80).
Prints one line per step; exits 1 at the first failure, saying what differed. With
--keep-going it runs every step and exits 1 if any failed (later steps may then fail as a
consequence of earlier ones).
"""

import sys
import threading
import time
import traceback

import consul

# Blocking-query timing. Consul adds up to wait/16 of jitter to the wait.
WAIT = "5s"
WAIT_S = 5.0
WOKEN_WITHIN_S = 2.0  # a write wakes a watcher in well under the wait
WRITE_AFTER_S = 0.5  # the writer gives the watcher this long to be parked first


class Failed(Exception):
    pass


def eq(actual, expected, what):
    if actual != expected:
        raise Failed(f"{what}: expected {expected!r}, got {actual!r}")


def ok(cond, what, got=None):
    if not cond:
        raise Failed(f"{what}" + ("" if got is None else f"; got {got!r}"))


def index_of(idx, what):
    """py-consul returns the X-Consul-Index header as a string."""
    try:
        i = int(idx)
    except (TypeError, ValueError):
        raise Failed(f"{what}: X-Consul-Index is not an integer: {idx!r}") from None
    ok(i > 0, f"{what}: X-Consul-Index must be positive", i)
    return i


class Watcher(threading.Thread):
    """Runs one blocking call in its own client (requests sessions are not shared across
    threads) and records what it returned and how long it took."""

    def __init__(self, addr, call):
        super().__init__(daemon=True)
        self.client = consul.Consul(host=addr[0], port=addr[1])
        self.call = call
        self.result = None
        self.error = None
        self.elapsed = None

    def run(self):
        t0 = time.monotonic()
        try:
            self.result = self.call(self.client)
        except Exception as e:  # reported by finish()
            self.error = e
        self.elapsed = time.monotonic() - t0

    def finish(self, what):
        self.join(WAIT_S * 2 + 10)
        ok(not self.is_alive(), f"{what}: the blocking call did not return within {WAIT_S * 2 + 10} s")
        if self.error is not None:
            raise Failed(f"{what}: the blocking call raised {self.error!r}")
        return self.result, self.elapsed


class Run:
    def __init__(self, host, port):
        self.addr = (host, port)
        self.c = consul.Consul(host=host, port=port)
        self.node = None

    # ---- agent ----

    def agent_self(self):
        me = self.c.agent.self()
        cfg = me["Config"]
        ok(cfg.get("NodeName"), "Config.NodeName is set", cfg)
        eq(cfg.get("Datacenter"), "dc1", "Config.Datacenter")
        eq(cfg.get("Server"), True, "Config.Server (-dev runs a server)")
        eq(me["Member"]["Name"], cfg["NodeName"], "Member.Name")
        self.node = cfg["NodeName"]
        return f"node {self.node}"

    def agent_members(self):
        members = self.c.agent.members()
        eq([m["Name"] for m in members], [self.node], "member names")
        eq(members[0]["Status"], 1, "member Status (1 = alive)")
        eq(members[0]["Tags"].get("dc"), "dc1", "member Tags.dc")
        return f"{len(members)} member"

    def agent_services(self):
        svcs = self.c.agent.services()
        ok("web" in svcs, "agent.services() has the -dev example service web", sorted(svcs))
        web = svcs["web"]
        eq((web["Service"], web["Port"], web["Tags"]), ("web", 80, ["rails"]), "web (Service, Port, Tags)")
        return f"{sorted(svcs)}"

    def agent_service_register_ttl(self):
        ok(
            self.c.agent.service.register(
                "pyweb",
                service_id="pyweb1",
                address="127.0.0.1",
                port=9001,
                tags=["py", "v1"],
                meta={"owner": "py"},
                weights={"Passing": 3, "Warning": 1},
                check=consul.Check.ttl("30s"),
            ),
            "agent.service.register returned True",
        )
        s = self.c.agent.services().get("pyweb1")
        ok(s is not None, "pyweb1 is in agent.services()", sorted(self.c.agent.services()))
        eq(
            (s["Service"], s["Address"], s["Port"], s["Tags"], s["Meta"], s["Weights"]),
            ("pyweb", "127.0.0.1", 9001, ["py", "v1"], {"owner": "py"}, {"Passing": 3, "Warning": 1}),
            "pyweb1 (Service, Address, Port, Tags, Meta, Weights)",
        )
        checks = self.c.agent.checks()
        ch = checks.get("service:pyweb1")
        ok(ch is not None, "agent.checks() has the service's TTL check service:pyweb1", sorted(checks))
        eq((ch["Status"], ch["ServiceID"], ch["ServiceName"]), ("critical", "pyweb1", "pyweb"),
           "service:pyweb1 (Status, ServiceID, ServiceName): a TTL check starts critical")
        eq(ch["Type"], "ttl", "service:pyweb1 Type")
        idx, passing = self.c.health.service("pyweb", passing=True)
        eq(passing, [], "health.service('pyweb', passing=True) while the TTL check is critical")
        _, every = self.c.health.service("pyweb")
        eq([e["Service"]["ID"] for e in every], ["pyweb1"], "health.service('pyweb') lists it anyway")
        index_of(idx, "health.service")
        return "registered with a critical TTL check"

    def ttl_pass_wakes_health_watcher(self):
        idx, _ = self.c.health.service("pyweb", passing=True)
        idx = index_of(idx, "health.service")
        w = Watcher(self.addr, lambda c: c.health.service("pyweb", passing=True, index=idx, wait=WAIT))
        w.start()
        time.sleep(WRITE_AFTER_S)
        ok(self.c.agent.check.ttl_pass("service:pyweb1", "all good"), "agent.check.ttl_pass returned True")
        (new_idx, entries), took = w.finish("blocking health.service")
        ok(took < WRITE_AFTER_S + WOKEN_WITHIN_S,
           f"the blocking health.service returned {took:.2f} s after it started: the TTL pass should wake it "
           f"well before the {WAIT} wait")
        ok(index_of(new_idx, "health.service") > idx, "the index moved past the watched one", (idx, new_idx))
        eq([e["Service"]["ID"] for e in entries], ["pyweb1"], "passing instances after ttl_pass")
        checks = {c["CheckID"]: c for c in entries[0]["Checks"]}
        ok("service:pyweb1" in checks, "the entry's Checks include service:pyweb1", sorted(checks))
        eq((checks["service:pyweb1"]["Status"], checks["service:pyweb1"]["Output"]), ("passing", "all good"),
           "service:pyweb1 (Status, Output) after ttl_pass with a note")
        eq(entries[0]["Node"]["Node"], self.node, "Node.Node of the entry")
        return f"woken after {took:.2f} s, index {idx} -> {new_idx}"

    def enable_tag_override(self):
        # py-consul spells the field "enabletagoverride"; Consul's Go decoder matches JSON keys
        # case-insensitively, so Consul accepts it.
        ok(self.c.agent.service.register("pytag", service_id="pytag1", port=9002, enable_tag_override=True),
           "agent.service.register returned True")
        s = self.c.agent.services().get("pytag1")
        ok(s is not None, "pytag1 is in agent.services()")
        eq(s["EnableTagOverride"], True,
           "EnableTagOverride of a service registered with enable_tag_override=True "
           "(py-consul sends {\"enabletagoverride\": true})")
        ok(self.c.agent.service.deregister("pytag1"), "agent.service.deregister returned True")
        return "EnableTagOverride true"

    def agent_check_register_for_service(self):
        # py-consul sends {"name", "ttl", "id", "serviceid"}: "serviceid" as Consul's
        # case-insensitive decoder reads it.
        ok(self.c.agent.check.register("py side check", check=consul.Check.ttl("30s"), check_id="pyside",
                                       service_id="pyweb1"),
           "agent.check.register returned True")
        ch = self.c.agent.checks().get("pyside")
        ok(ch is not None, "pyside is in agent.checks()", sorted(self.c.agent.checks()))
        eq((ch["Name"], ch["Status"], ch["Type"]), ("py side check", "critical", "ttl"), "pyside (Name, Status, Type)")
        eq(ch["ServiceID"], "pyweb1",
           "ServiceID of a check registered with service_id='pyweb1' (py-consul sends {\"serviceid\": \"pyweb1\"})")
        ok(self.c.agent.check.deregister("pyside"), "agent.check.deregister returned True")
        ok("pyside" not in self.c.agent.checks(), "pyside left agent.checks()")
        return "attached to pyweb1"

    def service_maintenance(self):
        # py-consul sends ?enable=True / ?enable=False (Python's str(bool)); Consul parses it
        # with Go's strconv.ParseBool, which takes 1, t, T, TRUE, true, True and their negations.
        ok(self.c.agent.service.maintenance("pyweb1", True, "py maintenance"),
           "agent.service.maintenance(enable=True) returned True")
        _, passing = self.c.health.service("pyweb", passing=True)
        eq(passing, [], "health.service('pyweb', passing=True) while pyweb1 is in maintenance")
        ch = self.c.agent.checks().get("_service_maintenance:pyweb1")
        ok(ch is not None, "agent.checks() has _service_maintenance:pyweb1", sorted(self.c.agent.checks()))
        eq((ch["Status"], ch["Notes"], ch["ServiceID"]), ("critical", "py maintenance", "pyweb1"),
           "_service_maintenance:pyweb1 (Status, Notes, ServiceID)")
        ok(self.c.agent.service.maintenance("pyweb1", False), "agent.service.maintenance(enable=False) returned True")
        _, passing = self.c.health.service("pyweb", passing=True)
        eq([e["Service"]["ID"] for e in passing], ["pyweb1"], "passing instances after maintenance ends")
        ok("_service_maintenance:pyweb1" not in self.c.agent.checks(), "the maintenance check is gone")
        return "dropped out of passing and came back"

    def agent_service_deregister(self):
        ok(self.c.agent.service.deregister("pyweb1"), "agent.service.deregister returned True")
        ok("pyweb1" not in self.c.agent.services(), "pyweb1 left agent.services()")
        checks = self.c.agent.checks()
        ok("service:pyweb1" not in checks, "its check left agent.checks()", sorted(checks))
        _, every = self.c.health.service("pyweb")
        eq(every, [], "health.service('pyweb') after deregistration")
        _, names = self.c.catalog.services()
        ok("pyweb" not in names, "pyweb left catalog.services()", sorted(names))
        return "gone from agent, health and catalog"

    # ---- catalog of an external node ----

    def catalog_register_external(self):
        printer = {"Service": "printer", "ID": "printer1", "Tags": ["lab", "color"], "Port": 631,
                   "Address": "10.9.8.8"}
        check = {"Node": "ext-py", "CheckID": "service:printer1", "Name": "printer alive",
                 "Status": "critical", "ServiceID": "printer1", "Output": "no paper"}
        ok(self.c.catalog.register("ext-py", "10.9.8.7", service=printer, check=check),
           "catalog.register(printer) returned True")
        scanner = {"Service": "scanner", "ID": "scanner1", "Port": 6566}
        ok(self.c.catalog.register("ext-py", "10.9.8.7", service=scanner), "catalog.register(scanner) returned True")

        idx, services = self.c.catalog.services()
        index_of(idx, "catalog.services")
        eq(sorted(services.get("printer", [])), ["color", "lab"], "catalog.services()['printer'] tags")
        eq(services.get("scanner"), [], "catalog.services()['scanner'] tags")
        ok("web" in services, "catalog.services() still has web", sorted(services))

        _, nodes = self.c.catalog.nodes()
        by_name = {n["Node"]: n for n in nodes}
        eq(sorted(by_name), sorted([self.node, "ext-py"]), "catalog.nodes() names")
        eq(by_name["ext-py"]["Address"], "10.9.8.7", "ext-py Address")

        _, insts = self.c.catalog.service("printer")
        eq(len(insts), 1, "catalog.service('printer') entries")
        i = insts[0]
        eq((i["Node"], i["Address"], i["ServiceID"], i["ServiceName"], i["ServicePort"], i["ServiceAddress"]),
           ("ext-py", "10.9.8.7", "printer1", "printer", 631, "10.9.8.8"),
           "printer (Node, Address, ServiceID, ServiceName, ServicePort, ServiceAddress)")
        eq(sorted(i["ServiceTags"]), ["color", "lab"], "printer ServiceTags")
        _, tagged = self.c.catalog.service("printer", tag="color")
        eq([x["ServiceID"] for x in tagged], ["printer1"], "catalog.service('printer', tag='color')")
        _, tagged = self.c.catalog.service("printer", tag="mono")
        eq(tagged, [], "catalog.service('printer', tag='mono')")

        _, node = self.c.catalog.node("ext-py")
        ok(node is not None, "catalog.node('ext-py') found")
        eq((node["Node"]["Node"], node["Node"]["Address"]), ("ext-py", "10.9.8.7"), "catalog.node Node")
        eq(sorted(node["Services"]), ["printer1", "scanner1"], "catalog.node Services keys")
        eq(node["Services"]["printer1"]["Port"], 631, "catalog.node printer1 Port")

        eq(self.c.catalog.datacenters(), ["dc1"], "catalog.datacenters()")
        return "node ext-py with printer1 and scanner1"

    def health_of_external(self):
        _, crit = self.c.health.state("critical")
        mine = [(c["Node"], c["CheckID"], c["ServiceID"], c["Output"]) for c in crit if c["Node"] == "ext-py"]
        eq(mine, [("ext-py", "service:printer1", "printer1", "no paper")], "health.state('critical') on ext-py")
        _, passing = self.c.health.state("passing")
        ok(all(c["Status"] == "passing" for c in passing), "health.state('passing') lists only passing checks", passing)
        _, node_checks = self.c.health.node("ext-py")
        eq([(c["CheckID"], c["Status"], c["Name"]) for c in node_checks],
           [("service:printer1", "critical", "printer alive")], "health.node('ext-py')")
        _, svc_checks = self.c.health.checks("printer")
        eq([(c["Node"], c["CheckID"], c["ServiceName"]) for c in svc_checks],
           [("ext-py", "service:printer1", "printer")], "health.checks('printer')")
        _, passing = self.c.health.service("printer", passing=True)
        eq(passing, [], "health.service('printer', passing=True) with its check critical")
        _, every = self.c.health.service("scanner", passing=True)
        eq([e["Service"]["ID"] for e in every], ["scanner1"], "health.service('scanner', passing=True): no check")
        return "critical printer check seen from state, node, checks and service"

    def catalog_deregister(self):
        # py-consul sends {"node": ..., "serviceid": ...}; Consul reads "serviceid" as ServiceID.
        ok(self.c.catalog.deregister("ext-py", service_id="scanner1"),
           "catalog.deregister(service_id='scanner1') returned True")
        _, node = self.c.catalog.node("ext-py")
        ok(node is not None,
           "ext-py still exists after deregistering only its service scanner1 "
           "(py-consul sends {\"node\": \"ext-py\", \"serviceid\": \"scanner1\"})")
        eq(sorted(node["Services"]), ["printer1"], "ext-py services after deregistering scanner1")
        ok(self.c.catalog.deregister("ext-py", check_id="service:printer1"),
           "catalog.deregister(check_id=...) returned True")
        _, node_checks = self.c.health.node("ext-py")
        eq(node_checks, [], "health.node('ext-py') after deregistering its check (py-consul sends \"checkid\")")
        ok(self.c.catalog.deregister("ext-py"), "catalog.deregister('ext-py') returned True")
        _, node = self.c.catalog.node("ext-py")
        eq(node, None, "catalog.node('ext-py') after deregistering the node")
        _, nodes = self.c.catalog.nodes()
        eq([n["Node"] for n in nodes], [self.node], "catalog.nodes() after deregistering ext-py")
        _, services = self.c.catalog.services()
        ok("printer" not in services and "scanner" not in services, "its services left catalog.services()",
           sorted(services))
        return "service, check, then node removed"

    # ---- status ----

    def status(self):
        leader = self.c.status.leader()
        ok(isinstance(leader, str) and ":" in leader, "status.leader() is host:port", leader)
        eq(self.c.status.peers(), [leader], "status.peers()")
        return leader

    # ---- KV ----

    def kv_basics(self):
        for k, v in [("py/a", "1"), ("py/b/c", "2"), ("py/b/d", "3"), ("pz", "other")]:
            ok(self.c.kv.put(k, v) is True, f"kv.put({k!r}) returned True")
        idx, e = self.c.kv.get("py/a")
        index_of(idx, "kv.get")
        eq((e["Key"], e["Value"], e["Flags"]), ("py/a", b"1", 0), "kv.get('py/a') (Key, Value, Flags)")
        eq(int(idx), e["ModifyIndex"], "X-Consul-Index of a single key is its ModifyIndex")
        _, missing = self.c.kv.get("py/nope")
        eq(missing, None, "kv.get of a missing key")
        _, entries = self.c.kv.get("py/", recurse=True)
        eq([(x["Key"], x["Value"]) for x in entries], [("py/a", b"1"), ("py/b/c", b"2"), ("py/b/d", b"3")],
           "kv.get('py/', recurse=True)")
        _, keys = self.c.kv.get("py/", keys=True, separator="/")
        eq(keys, ["py/a", "py/b/"], "kv.get('py/', keys=True, separator='/')")
        _, keys = self.c.kv.get("py/", keys=True)
        eq(keys, ["py/a", "py/b/c", "py/b/d"], "kv.get('py/', keys=True)")
        ok(self.c.kv.put("py/empty", None) is True, "kv.put of None (a 'directory' marker)")
        _, e = self.c.kv.get("py/empty")
        eq(e["Value"], None, "Value of a key put with None")
        ok(self.c.kv.put("py/bin", b"\x00\xffraw") is True, "kv.put of bytes")
        _, e = self.c.kv.get("py/bin")
        eq(e["Value"], b"\x00\xffraw", "binary value round trip")
        return "put, get, recurse, keys with separator"

    def kv_flags(self):
        ok(self.c.kv.put("py/flagged", "x", flags=42) is True, "kv.put(flags=42)")
        _, e = self.c.kv.get("py/flagged")
        eq(e["Flags"], 42, "Flags after put(flags=42)")
        ok(self.c.kv.put("py/flagged", "y", flags=2**64 - 1) is True, "kv.put(flags=2**64-1)")
        _, e = self.c.kv.get("py/flagged")
        eq((e["Flags"], e["Value"]), (2**64 - 1, b"y"), "Flags (max u64) and Value")
        return "42 and 2**64-1"

    def kv_cas(self):
        _, e = self.c.kv.get("py/a")
        m = e["ModifyIndex"]
        eq(self.c.kv.put("py/a", "2", cas=m), True, f"kv.put(cas={m}) with the current ModifyIndex")
        eq(self.c.kv.put("py/a", "3", cas=m), False, f"kv.put(cas={m}) with a stale index")
        _, e2 = self.c.kv.get("py/a")
        eq(e2["Value"], b"2", "value after the stale cas")
        ok(e2["ModifyIndex"] > m, "ModifyIndex moved", (m, e2["ModifyIndex"]))
        eq(e2["CreateIndex"], e["CreateIndex"], "CreateIndex kept")
        eq(self.c.kv.put("py/a", "4", cas=0), False, "kv.put(cas=0) on an existing key (create only)")
        eq(self.c.kv.put("py/new", "n", cas=0), True, "kv.put(cas=0) on a new key")
        eq(self.c.kv.delete("py/new", cas=e2["ModifyIndex"]), False, "kv.delete with a stale cas")
        _, n = self.c.kv.get("py/new")
        eq(self.c.kv.delete("py/new", cas=n["ModifyIndex"]), True, "kv.delete with the current cas")
        eq(self.c.kv.get("py/new")[1], None, "py/new after the cas delete")
        return f"cas={m} true, then false"

    def kv_blocking_wakes(self):
        ok(self.c.kv.put("py/watch", "v0"), "kv.put('py/watch')")
        idx, e = self.c.kv.get("py/watch")
        idx = index_of(idx, "kv.get")
        w = Watcher(self.addr, lambda c: c.kv.get("py/watch", index=idx, wait=WAIT))
        w.start()
        time.sleep(WRITE_AFTER_S)
        ok(self.c.kv.put("py/watch", "v1"), "kv.put('py/watch', 'v1')")
        (new_idx, e), took = w.finish("blocking kv.get")
        ok(took < WRITE_AFTER_S + WOKEN_WITHIN_S,
           f"the blocking kv.get returned {took:.2f} s after it started: the write should wake it well "
           f"before the {WAIT} wait")
        ok(took >= WRITE_AFTER_S * 0.8, f"the blocking kv.get returned after {took:.2f} s, before the write")
        ok(e is not None, "the woken kv.get returned the key")
        eq(e["Value"], b"v1", "value returned to the woken watcher")
        ok(index_of(new_idx, "kv.get") > idx, "index moved", (idx, new_idx))
        return f"woken after {took:.2f} s with v1, index {idx} -> {new_idx}"

    def kv_blocking_times_out(self):
        idx, e = self.c.kv.get("py/watch")
        idx = index_of(idx, "kv.get")
        w = Watcher(self.addr, lambda c: c.kv.get("py/watch", index=idx, wait=WAIT))
        w.start()
        time.sleep(WRITE_AFTER_S)
        ok(self.c.kv.put("py/unrelated", "u"), "kv.put('py/unrelated')")
        ok(self.c.kv.put("py/watchers-sibling", "s"), "kv.put('py/watchers-sibling')")
        (new_idx, e2), took = w.finish("blocking kv.get")
        ok(WAIT_S - 0.2 <= took <= WAIT_S * 17 / 16 + 1.5,
           f"a kv.get blocking on an unchanged key returned after {took:.2f} s: expected about the {WAIT} wait "
           f"(at most wait/16 of jitter)")
        eq(int(new_idx), idx, "index after the timeout (the watched key did not change)")
        eq(e2["Value"], b"v1", "value after the timeout")
        return f"timed out after {took:.2f} s, index still {idx}"

    def kv_delete_recurse(self):
        eq(self.c.kv.delete("py/", recurse=True), True, "kv.delete('py/', recurse=True)")
        eq(self.c.kv.get("py/", recurse=True)[1], None, "kv.get('py/', recurse=True) after the delete")
        eq(self.c.kv.get("py/", keys=True)[1], None, "kv.get('py/', keys=True) after the delete")
        _, e = self.c.kv.get("pz")
        eq(e["Value"], b"other", "pz (outside the prefix) survives")
        eq(self.c.kv.delete("pz"), True, "kv.delete('pz')")
        return "prefix removed, sibling kept"

    def steps(self):
        return [
            ("agent.self()", self.agent_self),
            ("agent.members()", self.agent_members),
            ("agent.services()", self.agent_services),
            ("agent.service.register(ttl check), agent.checks(), health.service", self.agent_service_register_ttl),
            ("agent.check.ttl_pass wakes a blocking health.service(passing=True)", self.ttl_pass_wakes_health_watcher),
            ("agent.service.register(enable_tag_override=True)", self.enable_tag_override),
            ("agent.check.register(service_id=...)", self.agent_check_register_for_service),
            ("agent.service.maintenance on and off", self.service_maintenance),
            ("agent.service.deregister", self.agent_service_deregister),
            ("catalog.register of an external node; services, nodes, service, node, datacenters",
             self.catalog_register_external),
            ("health.state/node/checks/service of the external node", self.health_of_external),
            ("catalog.deregister service, check, node", self.catalog_deregister),
            ("status.leader(), status.peers()", self.status),
            ("kv.put/get/recurse/keys", self.kv_basics),
            ("kv flags", self.kv_flags),
            ("kv cas", self.kv_cas),
            (f"blocking kv.get(wait={WAIT}) woken by a write", self.kv_blocking_wakes),
            (f"blocking kv.get(wait={WAIT}) times out on unrelated writes", self.kv_blocking_times_out),
            ("kv.delete(recurse=True)", self.kv_delete_recurse),
        ]


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    keep_going = "--keep-going" in argv
    if len(args) != 1 or ":" not in args[0]:
        print(__doc__, file=sys.stderr)
        return 2
    host, port = args[0].rsplit(":", 1)
    run = Run(host, int(port))
    failed = []
    t_all = time.monotonic()
    for name, fn in run.steps():
        t0 = time.monotonic()
        try:
            detail = fn()
        except Failed as e:
            print(f"FAIL {name}: {e}", flush=True)
            failed.append(name)
        except Exception as e:  # a py-consul exception (BadRequest, ConsulException...) or a KeyError
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=3, file=sys.stdout)
            failed.append(name)
        else:
            print(f"ok   {name} ({time.monotonic() - t0:.2f} s): {detail}", flush=True)
            continue
        if not keep_going:
            return 1
    total = len(run.steps())
    if failed:
        print(f"{len(failed)} of {total} steps failed: {failed}", flush=True)
        return 1
    print(f"all {total} py-consul steps passed in {time.monotonic() - t_all:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
