"""tests/integration/test_status.py - status that stays true after the router stops.

  * After a clean stop, `fdctl status` and `fdctl registered` say the router is stopped and exit
    1 (the segment is kept for the next start, and the control plane's log says so).
  * A control plane starting on the last run's segment (no data plane alive) marks every instance
    unknown until its first health check: an instance whose probe is still pending is never
    shown healthy nor selected from what the last run left.
  * A start that fails (port in use) removes the segment it created.
"""

import json
import os
import socket
import time

import fdharness
from fdharness import FdTestCase, wait_until


def shm_path(router):
    return "/dev/shm/" + router.shm_name.lstrip("/")


class StatusTest(FdTestCase):
    def stopped_router(self):
        cfg = {"manager": {"health-check-timeout-secs": 30, "health-success-threshold": 1}}
        router = self.h.start_router(config=cfg)
        sim = self.h.start_sim(name="s", router=router, register_interval_secs=3600)
        wait_until(lambda: router.selectable_urls() == [sim.url], 10, what="the sim selectable")
        self.assertEqual(router.fdctl("status").returncode, 0)
        router.proc.stop()
        self.assertEqual(router.proc.popen.returncode, 0, router.proc.logs())
        return router, sim

    def test_stopped_router_says_so(self):
        router, sim = self.stopped_router()
        self.assertTrue(os.path.exists(shm_path(router)))
        self.assertIn("shared memory %s kept" % router.shm_name, router.proc.stdout() + router.proc.stderr())
        st = router.fdctl("status", check=False)
        self.assertEqual(st.returncode, 1, st)
        self.assertIn("STOPPED", st.stdout)
        self.assertNotIn(", running,", st.stdout)
        js = router.fdctl("status", "--json", check=False)
        self.assertEqual(js.returncode, 1)
        self.assertIs(json.loads(js.stdout)["running"], False)
        for view in ("registered", "health", "stats"):
            r = router.fdctl(view, check=False)
            self.assertEqual(r.returncode, 1, "%s: %r" % (view, r))
            self.assertIn("is stopped", r.stderr)

    def test_last_run_instances_unknown_until_probed(self):
        router, sim = self.stopped_router()
        sim.proc.stop()
        # the instance's address now accepts connections and never answers: its probe stays pending
        hang = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(hang.close)
        hang.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hang.bind((fdharness.HOST, sim.port))
        hang.listen(64)
        first = router.proc
        router.proc = self.h.spawn("cp-again", list(first.argv))
        self.h.wait_router_ready(router)
        self.assertIn("REUSED", router.proc.stdout() + router.proc.stderr())
        deadline = time.monotonic() + fdharness.scaled(1.5)
        while time.monotonic() < deadline:
            inst = router.registered_local()
            self.assertEqual([i["url"] for i in inst], [sim.url])
            self.assertEqual(inst[0]["health"], "unknown", inst)
            self.assertFalse(inst[0]["selectable"], inst)
            time.sleep(0.1)
        self.assertIn("unknown until their first health check", router.proc.stdout() + router.proc.stderr())

    def test_failed_start_removes_the_segment_it_created(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(busy.close)
        busy.bind((fdharness.HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        router = self.h.start_router(port=port, wait_ready=False)
        self.assertEqual(router.proc.popen.wait(fdharness.scaled(10)), 1, router.proc.logs())
        self.assertIn("removed (created by this failed start)", router.proc.stdout() + router.proc.stderr())
        self.assertFalse(os.path.exists(shm_path(router)))
        r = router.fdctl("status", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no fd-router on port %d" % port, r.stderr)


if __name__ == "__main__":
    fdharness.main()
