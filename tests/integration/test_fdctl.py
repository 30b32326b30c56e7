"""tests/integration/test_fdctl.py - the operator CLI against a running router: `registered` and
`status`, as a table and as JSON, and the messages an operator gets when something is wrong
(no router on that port, unknown command).
"""

import os
import time

import fdharness
from fdharness import FdTestCase, wait_until


class FdctlTest(FdTestCase):
    def test_no_router_on_port(self):
        port = fdharness.free_port()
        self.assertFalse(os.path.exists("/dev/shm/fd-router-%d" % port))
        for cmd in ("registered", "status"):
            with self.subTest(cmd=cmd):
                r = self.h.fdctl("--port", str(port), cmd, check=False)
                self.assertEqual(r.returncode, 1)
                self.assertEqual(r.stderr, "fdctl: no fd-router on port %d (shared memory /fd-router-%d not found)\n"
                                 % (port, port))
                self.assertEqual(r.stdout, "")

    def test_usage_errors(self):
        r = self.h.fdctl("--port", "9000", "frobnicate", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command: frobnicate", r.stderr)
        self.assertIn("usage: fdctl", r.stderr)
        r = self.h.fdctl("--help", check=False)
        self.assertEqual(r.returncode, 0)
        self.assertIn("registered", r.stdout)
        self.assertIn("status", r.stdout)
        r = self.h.fdctl("status", check=False)
        self.assertEqual(r.returncode, 2, "no --port")
        r = self.h.fdctl("--port", "70000", "status", check=False)
        self.assertEqual(r.returncode, 2)

    def test_registered_table_and_json(self):
        router = self.h.start_router(config={"manager": {"health-failure-threshold": 1}})
        a = self.h.start_sim(name="a", tokens=50, token_delay_ms=100)
        b = self.h.start_sim(name="b")
        router.register_sim(a)
        router.register_sim(b)

        instances = router.registered_local()
        self.assertEqual(sorted(i["url"] for i in instances), sorted([a.url, b.url]))
        for i in instances:
            self.assertEqual(i["role"], "mixed")
            self.assertEqual(i["state"], "live")
            self.assertEqual(i["health"], "healthy")
            self.assertIs(i["drained"], False)
            self.assertIs(i["selectable"], True)
            self.assertEqual(i["inflight"], 0)
            self.assertEqual(i["tokens"], 0)
            self.assertIsInstance(i["registered_age_ms"], int)
            self.assertGreaterEqual(i["registered_age_ms"], 0)
            self.assertLess(i["registered_age_ms"], fdharness.scaled(60000))

        # one request held open on `a` (50 tokens, 100 ms apart) shows as in flight there
        with_request = fdharness.Stream(router.port, "/v1/chat/completions",
                                        fdharness.chat_body("hold", stream=True, sim_tokens=50, sim_token_delay_ms=100))
        try:
            self.assertEqual(with_request.status, 200)
            wait_until(lambda: sum(router.inflight().values()) == 1, 5, what="one request in flight")
            table = router.fdctl("registered").stdout
            self.assertIn("URL", table)
            self.assertIn("INFLIGHT", table)
            self.assertIn(a.url, table)
            self.assertIn(b.url, table)
        finally:
            with_request.close()
        router.wait_inflight_zero()

        # an instance failing its health checks is shown unhealthy, not selectable
        b.set_health(False)
        wait_until(lambda: {i["url"]: i["health"] for i in router.registered_local()}[b.url] == "unhealthy", 10,
                   what="b shown unhealthy")
        entry = [i for i in router.registered_local() if i["url"] == b.url][0]
        self.assertIs(entry["selectable"], False)
        self.assertIn("unhealthy", router.fdctl("registered").stdout)

    def test_removed_instance_shown_draining_until_its_requests_end(self):
        router = self.h.start_router(config={"manager": {"health-failure-threshold": 1,
                                                         "unhealthy-removal-secs": 0.5}})
        sim = self.h.start_sim(name="a")
        router.register_sim(sim)
        st = fdharness.Stream(router.port, "/v1/chat/completions",
                              fdharness.chat_body("hold", stream=True, sim_tokens=100000, sim_token_delay_ms=100))
        self.addCleanup(st.close)
        self.assertEqual(st.status, 200)
        sim.set_health(False)
        wait_until(lambda: router.registered_urls() == [], 10, what="a removed from /registered")

        (entry,) = router.registered_local()
        self.assertEqual(entry["url"], sim.url)
        self.assertEqual(entry["state"], "retired")
        self.assertEqual(entry["inflight"], 1)
        self.assertIs(entry["selectable"], False)
        self.assertIn("retired(draining)", router.fdctl("registered").stdout)
        self.assertEqual(router.status()["shm"]["instances_live"], 0)

        st.close()
        wait_until(lambda: router.registered_local() == [], 10, what="the drained slot to be collected")
        self.assertIn("no instances registered", router.fdctl("registered").stdout)

    def test_status_json_and_text(self):
        router = self.h.start_router()
        sim = self.h.start_sim()
        router.register_sim(sim)
        for _ in range(3):
            self.assertEqual(router.chat(fdharness.chat_body()).status, 200)

        st = router.status()
        self.assertEqual(st["cp"]["pid"], router.cp_pid, "the launcher execs the control plane")
        self.assertIs(st["cp"]["alive"], True)
        self.assertIsInstance(st["cp"]["started_at_ms"], int)
        self.assertLess(abs(st["cp"]["started_at_ms"] - time.time() * 1000), fdharness.scaled(120000))
        self.assertIsInstance(st["cp"]["heartbeat_age_ms"], int)
        self.assertLess(st["cp"]["heartbeat_age_ms"], fdharness.scaled(5000))
        self.assertEqual(len(st["dp"]), 1, st)
        dp = st["dp"][0]
        self.assertEqual(dp["state"], "serving")
        self.assertIs(dp["alive"], True)
        self.assertIn("fd-router-dp", fdharness._proc_cmdline(dp["pid"]))
        self.assertGreaterEqual(dp["requests_total"], 3)
        self.assertIsInstance(dp["row"], int)
        self.assertEqual(st["shm"]["name"], router.shm_name)
        self.assertEqual(st["shm"]["size"], os.stat("/dev/shm/" + router.shm_name.lstrip("/")).st_size)
        self.assertEqual(st["shm"]["layout_version"], fdharness.layout_version())
        self.assertGreater(st["shm"]["arena_blocks"], 0)
        self.assertGreater(st["shm"]["arena_used"], 0)
        self.assertEqual(st["shm"]["instances_live"], 1)
        self.assertIsInstance(st["table_age_ms"], int)
        self.assertEqual(st["config"]["policy"], "request_num")

        text = router.fdctl("status").stdout
        self.assertIn("pid %d" % router.cp_pid, text)
        self.assertIn("pid %d" % dp["pid"], text)
        self.assertIn("serving", text)
        self.assertIn(router.shm_name, text)
        self.assertIn("1 live", text)


if __name__ == "__main__":
    fdharness.main()
