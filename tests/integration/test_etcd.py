"""tests/integration/test_etcd.py - several router hosts sharing one fleet through etcd
(registry.backend: etcd, controlplane/etcd.c).

Each test starts a real etcd (Debian's etcd-server) on 127.0.0.1 with random free ports and a
data dir in the test's temp dir, and two routers on their own ports, segments and control
sockets, both pointed at it under a prefix of their own. etcd missing is a failure, not a skip:
tools/setup-deps.sh installs it.
"""

import base64
import http.server
import json
import os
import shutil
import signal
import threading
import time

import fdharness as fh
from fdharness import HOST, FdTestCase, wait_until

CHAT = "/v1/chat/completions"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"


class Etcd:
    """One etcd member on 127.0.0.1 (client and peer ports free a moment ago)."""

    def __init__(self, h):
        if not os.access(ETCD, os.X_OK):
            raise AssertionError("etcd is not installed (Debian package etcd-server): run tools/setup-deps.sh")
        self.h = h
        self.port = fh.free_port()
        self.peer = fh.free_port()
        self.data = os.path.join(h.tmpdir, "etcd-data")
        self.url = "http://%s:%d" % (HOST, self.port)
        self.proc = None
        self.start()

    def start(self):
        peer = "http://%s:%d" % (HOST, self.peer)
        self.proc = self.h.spawn("etcd", [
            ETCD, "--name", "it", "--data-dir", self.data, "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url, "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer, "--initial-cluster", "it=" + peer,
            "--log-level", "warn"])
        wait_until(self.ready, 20, what="etcd on port %d" % self.port)

    def ready(self):
        if not self.proc.alive():
            raise AssertionError("etcd exited:\n" + self.proc.logs())
        r = fh.post(self.port, "/v3/kv/range", {"key": "AA=="}, timeout=2)
        return r.status == 200

    def kill9(self):
        self.proc.kill(signal.SIGKILL)
        self.proc.popen.wait(fh.scaled(5))


def fh_fdctl(r, *args):
    """fdctl for router r, with its control socket (actions and the registry's state go there)."""
    return r.h.fdctl("--port", str(r.port), "--shm_name", r.shm_name, "--control_socket", r.control_socket, *args)


def registry_config(etcd, prefix, lease_secs=3):
    return {
        "registry": {"backend": "etcd", "etcd-endpoints": etcd.url, "etcd-prefix": prefix,
                     "etcd-lease-secs": lease_secs, "etcd-retry-secs": 0.2, "etcd-timeout-secs": 1},
        "manager": {"health-failure-threshold": 1, "health-success-threshold": 1},
    }


class EtcdFleet(FdTestCase):
    def fleet(self, lease_secs=3):
        self.etcd = Etcd(self.h)
        self.prefix = "/fd-router/it-%d-%d" % (os.getpid(), id(self) % 100000)
        cfg = registry_config(self.etcd, self.prefix, lease_secs)
        a = self.h.start_router(config=cfg)
        b = self.h.start_router(config=cfg)
        for r in (a, b):
            wait_until(lambda r=r: r.cp_status()["registry"]["state"] == "up", 10,
                       what="router %d connected to etcd" % r.port)
        return a, b

    def test_heartbeats_to_one_host_route_on_both(self):
        a, b = self.fleet()
        st = b.cp_status()["registry"]
        self.assertEqual((st["backend"], st["endpoints"]), ("etcd", [self.etcd.url]))
        sim = self.h.start_sim(name="s0", router=a, register_interval_secs=0.5)
        wait_until(lambda: a.registered_urls() == [sim.url], 10, what="A to register the sim")
        t0 = time.monotonic()
        wait_until(lambda: b.registered_urls() == [sim.url], 1, what="B to learn the sim from etcd")
        self.assertLess(time.monotonic() - t0, fh.scaled(1))
        before = sim.stats()["requests"]
        r = b.chat(fh.chat_body("hello"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sim.stats()["requests"], before + 1, "B sent the request to the sim")
        self.assertGreater(b.cp_status()["registry"]["revision"], 0)
        # heartbeats of an unchanged registration are not writes
        puts = a.cp_status()["registry"]["puts"]
        wait_until(lambda: sim.stats()["register_ok"] >= 5, 10, what="a few heartbeats")
        self.assertEqual(a.cp_status()["registry"]["puts"], puts)
        out = fh_fdctl(a, "status").stdout
        self.assertIn("registry       etcd %s (%s), up for" % (self.etcd.url, self.etcd.url), out)
        st = json.loads(fh_fdctl(a, "status", "--json").stdout)["registry"]
        self.assertEqual((st["backend"], st["state"]), ("etcd", "up"))

    def test_drain_undrain_remove_through_the_other_host(self):
        a, b = self.fleet(lease_secs=30)
        sim = self.h.start_sim(name="s0")
        a.register_sim(sim)  # once: no heartbeats, so that remove is not refused
        wait_until(lambda: b.registered_urls() == [sim.url], 1, what="B to learn the sim")

        def drained(r):
            return {i["url"]: i["drained"] for i in r.registered_local()}.get(sim.url)

        fh_fdctl(b, "drain", sim.url)
        wait_until(lambda: drained(a) is True, 1, what="A to apply B's drain")
        served = sim.stats()["requests"]
        self.assertNotEqual(a.chat(fh.chat_body("x")).status, 200, "no instance selectable on A")
        self.assertEqual(sim.stats()["requests"], served, "A sent nothing to the drained instance")
        fh_fdctl(b, "undrain", sim.url)
        wait_until(lambda: drained(a) is False, 1, what="A to apply B's undrain")
        self.assertEqual(a.chat(fh.chat_body("x")).status, 200)
        fh_fdctl(b, "remove", sim.url)
        wait_until(lambda: a.registered_urls() == [], 1, what="A to apply B's remove")

    def test_each_host_applies_its_own_instance_rules(self):
        self.etcd = Etcd(self.h)
        prefix = "/fd-router/rules-%d" % os.getpid()
        a = self.h.start_router(config=registry_config(self.etcd, prefix))
        strict = registry_config(self.etcd, prefix)
        strict["auth"] = {"instance-allow": "10.0.0.0/8"}
        b = self.h.start_router(config=strict)
        sim = self.h.start_sim(name="s0")
        a.register_sim(sim)
        wait_until(lambda: "ignoring the registration of %s" % sim.url in b.proc.stdout() + b.proc.stderr(), 5,
                   what="B to refuse what its auth.instance-allow does not allow")
        self.assertEqual(b.registered_urls(), [])
        self.assertEqual(a.registered_urls(), [sim.url])
        # B says where it disagrees with the fleet
        self.assertEqual(b.cp_status()["registry"]["not_routable_here"], [{"url": sim.url, "here": "not registered"}])
        self.assertIn("in the fleet, not routable here: %s (not registered)" % sim.url, fh_fdctl(b, "status").stdout)
        self.assertEqual(a.cp_status()["registry"]["not_routable_here"], [])

    def test_a_dead_endpoint_is_passed_over(self):
        self.etcd = Etcd(self.h)
        dead = "http://%s:%d" % (HOST, fh.free_port())
        cfg = registry_config(self.etcd, "/fd-router/failover-%d" % os.getpid())
        cfg["registry"]["etcd-endpoints"] = "%s, %s" % (dead, self.etcd.url)
        r = self.h.start_router(config=cfg)
        wait_until(lambda: r.cp_status()["registry"]["state"] == "up", 5, what="the second endpoint to be used")
        st = r.cp_status()["registry"]
        self.assertEqual((st["endpoints"], st["endpoint"]), ([dead, self.etcd.url], self.etcd.url))

    def test_a_dead_instance_leaves_every_host_within_its_lease(self):
        a, b = self.fleet(lease_secs=3)
        sim = self.h.start_sim(name="s0", router=a, register_interval_secs=0.5)
        wait_until(lambda: b.registered_urls() == [sim.url], 10, what="B to learn the sim")
        sim.proc.kill(signal.SIGKILL)
        t0 = time.monotonic()
        for r in (a, b):
            wait_until(lambda r=r: r.registered_urls() == [], 3 + 2, what="the sim gone from %d" % r.port)
        self.assertLess(time.monotonic() - t0, fh.scaled(3 + 2))

    def test_etcd_killed_under_load(self):
        a, b = self.fleet(lease_secs=5)
        s0 = self.h.start_sim(name="s0", router=a, register_interval_secs=0.5)
        wait_until(lambda: b.registered_urls() == [s0.url], 10, what="B to learn s0")
        failures, done = [], threading.Event()
        counts = {a.port: 0, b.port: 0}

        def load(r):
            while not done.is_set():
                try:
                    resp = r.chat(fh.chat_body("load"), timeout=10)
                    if resp.status != 200:
                        failures.append((r.port, resp.status, resp.text()[:200]))
                except Exception as e:  # noqa: BLE001 - a failed request is what we count
                    failures.append((r.port, repr(e)))
                counts[r.port] += 1

        threads = [threading.Thread(target=load, args=(r,), daemon=True) for r in (a, b)]
        for t in threads:
            t.start()
        self.addCleanup(done.set)
        wait_until(lambda: min(counts.values()) >= 10, 10, what="load on both hosts")
        self.etcd.kill9()
        wait_until(lambda: a.cp_status()["registry"]["state"] == "down", 5, what="A to see etcd gone")
        s1 = self.h.start_sim(name="s1")
        a.register_sim(s1)
        self.assertEqual(a.registered_urls(), sorted([s0.url, s1.url]), "routable on A at once")
        before = dict(counts)
        wait_until(lambda: min(counts[p] - before[p] for p in counts) >= 10, 10, what="load going on")
        self.etcd.start()
        t0 = time.monotonic()
        wait_until(lambda: b.registered_urls() == sorted([s0.url, s1.url]), 2,
                   what="B to learn s1 after etcd's return")
        self.assertLess(time.monotonic() - t0, fh.scaled(2))
        done.set()
        for t in threads:
            t.join(fh.scaled(15))
        self.assertEqual(failures, [], "requests failed while etcd was away")
        self.assertEqual(a.registered_urls(), sorted([s0.url, s1.url]))

    def test_a_restarted_host_serves_from_etcd(self):
        a, b = self.fleet(lease_secs=30)
        sims = sorted((self.h.start_sim(name="s%d" % i) for i in range(2)), key=lambda s: s.url)
        for s in sims:
            a.register_sim(s)  # once: nothing registers again before B serves
        wait_until(lambda: b.registered_urls() == [s.url for s in sims], 2, what="B to learn both")
        dp = b.serving_dp()
        b.proc.kill(signal.SIGKILL)
        fh.kill_pid(dp, signal.SIGKILL, expect="fd-router-dp")
        wait_until(lambda: not fh.pid_alive(dp) and not b.proc.alive(), 5, what="host B to die")
        # B again, from nothing (a fresh segment, same fleet): its table comes from etcd
        c = self.h.start_router(config=registry_config(self.etcd, self.prefix, 30), wait_ready=False)
        self.h.wait_router_ready(c)
        wait_until(lambda: c.registered_urls() == [s.url for s in sims], 2, what="the new host to load the fleet")
        before = sum(s.stats()["requests"] for s in sims)
        for i in range(4):
            self.assertEqual(c.chat(fh.chat_body("q %d" % i)).status, 200)
        self.assertEqual(sum(s.stats()["requests"] for s in sims), before + 4)


def b64(s):
    return base64.b64encode(s.encode()).decode()


class FakeGateway(http.server.ThreadingHTTPServer):
    """An etcd HTTP/JSON gateway that serves the ranges it is given, one after the other, and a
    watch that answers "compacted" when told to: what a watch that fell behind compaction sees."""

    daemon_threads = True

    def __init__(self, ranges):
        self.ranges = list(ranges)  # kvs lists, one per range call (the last one repeats)
        self.range_calls = 0
        self.compact = threading.Event()
        self.closing = threading.Event()
        super().__init__((HOST, 0), FakeHandler)
        self.port = self.server_address[1]
        self.url = "http://%s:%d" % (HOST, self.port)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self):
        self.closing.set()
        self.compact.set()
        self.shutdown()
        self.server_close()


class FakeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def chunk(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_POST(self):
        gw = self.server
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        header = {"revision": str(10 + gw.range_calls)}
        if self.path == "/v3/kv/range":
            if req.get("count_only"):
                return self.send_json({"header": header, "count": "0"})
            kvs = gw.ranges[min(gw.range_calls, len(gw.ranges) - 1)]
            gw.range_calls += 1
            return self.send_json({"header": header, "kvs": kvs, "count": str(len(kvs))})
        if self.path == "/v3/watch":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.chunk({"result": {"header": header, "created": True}})
            gw.compact.wait(30)
            if not gw.closing.is_set():
                gw.compact.clear()
                self.chunk({"result": {"header": header, "compact_revision": "9", "canceled": True}})
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True
            return None
        if self.path == "/v3/lease/grant":
            return self.send_json({"header": header, "ID": "7", "TTL": req.get("TTL", 5)})
        if self.path == "/v3/lease/keepalive":
            return self.send_json({"result": {"header": header, "ID": "7", "TTL": "5"}})
        return self.send_json({"header": header})


class EtcdCompaction(FdTestCase):
    def test_a_watch_behind_compaction_resyncs_from_a_fresh_range(self):
        sim = self.h.start_sim(name="s0")
        prefix = "/fd-router/compact"
        kv = {"key": b64("%s/i/%s" % (prefix, sim.url)),
              "value": b64(json.dumps({"role": "mixed", "host_ip": HOST, "port": sim.port})), "lease": "0"}
        gw = FakeGateway([[], [kv]])
        self.addCleanup(gw.stop)
        cfg = {"registry": {"backend": "etcd", "etcd-endpoints": gw.url, "etcd-prefix": prefix,
                            "etcd-retry-secs": 0.2, "etcd-timeout-secs": 1}}
        r = self.h.start_router(config=cfg)
        wait_until(lambda: r.cp_status()["registry"]["state"] == "up", 10, what="the router to sync")
        self.assertEqual((gw.range_calls, r.registered_urls()), (1, []))
        gw.compact.set()  # etcd compacted past the watch: it is cancelled
        wait_until(lambda: r.registered_urls() == [sim.url], 5, what="a fresh range to bring the instance")
        self.assertEqual(gw.range_calls, 2)
        self.assertIn("fell behind compaction", r.proc.stdout() + r.proc.stderr())
        self.assertEqual(r.chat(fh.chat_body("hi")).status, 200)


if __name__ == "__main__":
    fh.main()
