"""tests/integration/test_fdctl_actions.py - fdctl as the operator's tool: the actions that go
through the control plane (drain, undrain, remove, upgrade) and the views health and stats, each
with --json, and the messages an operator gets when no router runs on that port or a command is
used wrongly.
"""

import json
import subprocess

import fdharness
from fdharness import FdTestCase, wait_until

CHAT = "/v1/chat/completions"


def fdctl(*args, timeout=30):
    return subprocess.run([fdharness.binary("fdctl")] + list(args), capture_output=True, text=True,
                          timeout=fdharness.scaled(timeout))


def ctl(router, *args):
    return fdctl("--port", str(router.port), "--control_socket", router.control_socket, *args)


class FdctlNoRouterTest(FdTestCase):
    def test_actions_without_a_router(self):
        port = fdharness.free_port()
        for cmd in (["upgrade"], ["drain", "http://127.0.0.1:1"], ["undrain", "http://127.0.0.1:1"],
                    ["remove", "http://127.0.0.1:1"]):
            with self.subTest(cmd=cmd[0]):
                sock = "%s/nothing-here.sock" % self.h.tmpdir
                r = fdctl("--port", str(port), "--control_socket", sock, *cmd)
                self.assertEqual(r.returncode, 1, r)
                self.assertTrue(r.stderr.startswith("fdctl: no fd-router control plane on port %d (control socket %s: "
                                                    % (port, sock)), r.stderr)
                self.assertEqual(r.stdout, "")
        for cmd in ("health", "stats"):
            with self.subTest(cmd=cmd):
                r = fdctl("--port", str(port), cmd)
                self.assertEqual(r.returncode, 1)
                self.assertEqual(r.stderr, "fdctl: no fd-router on port %d (shared memory /fd-router-%d not found)\n"
                                 % (port, port))

    def test_usage_errors(self):
        r = fdctl("--port", "9000", "drain")
        self.assertEqual(r.returncode, 2)
        self.assertIn("drain needs the instance's URL", r.stderr)
        r = fdctl("--port", "9000", "upgrade", "--drain_secs", "soon")
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid --drain_secs", r.stderr)
        r = fdctl("--port", "9000", "remove", "http://a:1", "http://b:2")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unexpected argument: http://b:2", r.stderr)
        r = fdctl("upgrade")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--port (or --control_socket) is required", r.stderr)
        r = fdctl("--help")
        for word in ("health", "stats", "drain URL", "undrain URL", "remove URL", "upgrade", "--dp_binary"):
            self.assertIn(word, r.stdout)


class FdctlActionsTest(FdTestCase):
    def fleet(self):
        router = self.h.start_router(config={"manager": {"health-failure-threshold": 1}})
        a, b = sorted((self.h.start_sim(name=n) for n in ("a", "b")), key=lambda s: s.url)
        router.register_sim(a)
        router.register_sim(b)
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="both selectable")
        return router, a, b

    def served_by(self, router, n=6):
        names = set()
        for i in range(n):
            r = router.chat(fdharness.chat_body("who %d" % i))
            self.assertEqual(r.status, 200, r)
            names.add(r.json()["sim_instance"])
        return names

    def test_drain_undrain_remove(self):
        router, a, b = self.fleet()
        held = fdharness.Stream(router.port, CHAT, fdharness.chat_body("held", stream=True, sim_tokens=20,
                                                                      sim_token_delay_ms=50))
        self.addCleanup(held.close)
        wait_until(lambda: sum(router.inflight().values()) == 1, 5, what="one request in flight")
        busy = [u for u, n in router.inflight().items() if n == 1][0]
        other = b.url if busy == a.url else a.url

        r = ctl(router, "drain", busy)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "instance %s drained: no new requests, in-flight ones finish\n" % busy)
        self.assertEqual(router.selectable_urls(), [other])
        entry = [i for i in router.registered_local() if i["url"] == busy][0]
        self.assertEqual((entry["drained"], entry["inflight"]), (True, 1))
        self.assertIn(",drained", router.fdctl("registered").stdout)
        by_url = {a.url: a.name, b.url: b.name}
        self.assertEqual(self.served_by(router), {by_url[other]})
        # its in-flight request finishes whole
        self.assertEqual(fdharness.parse_sse(held.read_all())[-1], "[DONE]")
        router.wait_inflight_zero()
        self.assertIn(busy, router.registered_urls(), "a drained instance stays registered")

        r = ctl(router, "--json", "undrain", busy)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["code"], 200)
        wait_until(lambda: len(router.selectable_urls()) == 2, 5, what="selectable again")

        r = ctl(router, "remove", busy)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(router.registered_urls(), [other])
        self.assertEqual(self.served_by(router), {by_url[other]})

        r = ctl(router, "remove", "http://127.0.0.1:1")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "fdctl: instance http://127.0.0.1:1 is not registered (HTTP 404)\n")
        r = ctl(router, "drain", "http://127.0.0.1:1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not registered", r.stderr)

    def test_url_without_scheme(self):
        router, a, b = self.fleet()
        bare = a.url[len("http://"):]
        r = ctl(router, "drain", bare)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(router.selectable_urls(), [b.url])
        r = ctl(router, "undrain", bare)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: len(router.selectable_urls()) == 2, 5, what="selectable again")

    def test_remove_refused_while_it_heartbeats(self):
        router = self.h.start_router()
        sim = self.h.start_sim(name="hb", router=router, register_interval_secs=0.2)
        wait_until(lambda: sim.stats()["register_ok"] >= 2, 10, what="two heartbeats")
        r = ctl(router, "remove", sim.url)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("still registers itself", r.stderr)
        self.assertIn("(HTTP 409)", r.stderr)
        self.assertEqual(router.registered_urls(), [sim.url], "refused: nothing changed")
        self.assertEqual(ctl(router, "drain", sim.url).returncode, 0)
        self.assertEqual(router.selectable_urls(), [])

    def test_health_and_stats(self):
        router, a, b = self.fleet()
        for i in range(10):
            self.assertEqual(router.chat(fdharness.chat_body("s%d" % i, stream=i % 2 == 0)).status, 200)
        a.set_fail("status", status=500, count=2)
        statuses = [router.chat(fdharness.chat_body("f%d" % i)).status for i in range(6)]
        self.assertEqual(statuses.count(500), 2, statuses)

        st = json.loads(router.fdctl("stats", "--json").stdout)["instances"]
        self.assertEqual([i["url"] for i in st], [a.url, b.url])
        self.assertEqual(sum(i["requests"] for i in st), 16)
        sa = st[0]
        self.assertEqual(sa["by_status"]["500"], 2)
        self.assertEqual(sa["errors"], 2)
        self.assertEqual(sa["ok"], sa["by_status"]["200"])
        for i in st:
            self.assertEqual(i["ttfb"]["count"], i["requests"])
            if not i["requests"]:  # sequential requests all go to the first URL (ties)
                self.assertIsNone(i["ttfb"]["p99_ms"])
                continue
            self.assertGreater(i["ttfb"]["p99_ms"], 0)
            self.assertLessEqual(i["ttfb"]["p50_ms"], i["ttfb"]["p99_ms"])
            self.assertEqual(i["duration"]["count"], i["requests"], "every answer was relayed to its end")
            self.assertEqual(i["inflight"], 0)
        table = router.fdctl("stats").stdout
        self.assertIn("TTFB p99", table)
        self.assertIn(a.url, table)

        b.set_health(False)
        wait_until(lambda: [i["health"] for i in json.loads(router.fdctl("health", "--json").stdout)["instances"]]
                   == ["healthy", "unhealthy"], 10, what="b unhealthy in fdctl health")
        hb = json.loads(router.fdctl("health", "--json").stdout)["instances"][1]
        self.assertEqual(hb["url"], b.url)
        self.assertGreaterEqual(hb["consecutive_fail"], 1)
        self.assertEqual(hb["consecutive_ok"], 0)
        self.assertIsInstance(hb["last_check_age_ms"], int)
        self.assertIsInstance(hb["unhealthy_for_ms"], int)
        self.assertTrue(hb["last_error"])
        table = router.fdctl("health").stdout
        self.assertIn("unhealthy", table)
        self.assertIn("LAST ERROR", table)

    def test_status_and_upgrade_text(self):
        router, a, b = self.fleet()
        st = router.status()
        self.assertIsNone(st["shm"]["writer_lock_owner"])
        self.assertEqual(st["shm"]["writer_lock_recovered"], 0)
        self.assertRegex(st["dp"][0]["build"], "^[0-9a-f]{12}$")
        old = st["dp"][0]["pid"]
        r = ctl(router, "upgrade", "--drain_secs", "5")
        self.assertEqual(r.returncode, 0, r.stderr)
        first = r.stdout.splitlines()[0]
        self.assertRegex(first, r"^upgrade 1 done in \d+ ms: data plane pid %d -> pid \d+ \(.*fd-router-dp\)$" % old)
        self.assertIn("new data plane ready after", r.stdout)
        self.assertIn("cut at the drain deadline", r.stdout)
        new = router.serving_dp()
        router.seen_dp_pids.add(new)
        self.assertNotEqual(new, old)
        text = router.fdctl("status").stdout
        self.assertIn("pid %d" % new, text)
        self.assertIn("writer lock    free", text)


if __name__ == "__main__":
    fdharness.main()
