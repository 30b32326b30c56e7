"""tests/integration/test_crash.py - what survives a crash. `kill -9` of the data plane: the
control plane starts a new one that serves within a second, with the registry intact (no
instance had to re-register) and the dead process's in-flight counts gone. `kill -9` of the
control plane: the data plane keeps routing on the last published table, and fdctl still reads it.
"""

import concurrent.futures
import signal
import time

import fdharness
from fdharness import FdTestCase, wait_until


class CrashTest(FdTestCase):
    def start_fleet(self):
        router = self.h.start_router()
        # registered once by their own heartbeat thread; the next heartbeat would be an hour later,
        # so a registry that survives the crash cannot be a re-registration in disguise
        sims = [self.h.start_sim(name="s%d" % i, router=router, register_interval_secs=3600, tokens=4)
                for i in range(2)]
        wait_until(lambda: len(router.registered_urls()) == 2, 10, what="both sims registered")
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="both sims selectable")
        for s in sims:
            self.assertEqual(s.stats()["register_ok"], 1)
        return router, sims

    def hold_streams(self, router, n):
        streams = [fdharness.Stream(router.port, "/v1/chat/completions",
                                    fdharness.chat_body("hold %d" % i, stream=True, sim_tokens=100000,
                                                        sim_token_delay_ms=100)) for i in range(n)]
        self.addCleanup(lambda: [s.close() for s in streams])
        for s in streams:
            self.assertEqual(s.status, 200)
        return streams

    def all_ok(self, router, n=20):
        def one(i):
            return router.chat(fdharness.chat_body("after %d" % i, stream=i % 2 == 0)).status

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, range(n)))

    def test_data_plane_kill_9(self):
        router, sims = self.start_fleet()
        self.hold_streams(router, 4)
        self.assertEqual(sum(router.inflight().values()), 4)
        old = router.serving_dp()
        self.assertIsNotNone(old)

        t0 = time.monotonic()
        fdharness.kill_pid(old, signal.SIGKILL, expect="fd-router-dp")

        def serving_again():
            return fdharness.get(router.port, "/health", timeout=2).status == 200

        wait_until(serving_again, 5, interval=0.01, what="/health answered by a new data plane")
        took = time.monotonic() - t0
        self.assertLess(took, fdharness.scaled(1.0), "a new data plane served /health %.3f s after the kill" % took)
        new = wait_until(lambda: router.serving_dp(), 5, what="one serving data plane in shm")
        self.assertNotEqual(new, old)
        self.assertFalse(fdharness.pid_alive(old))

        # the dead DP's counts are released by the control plane: nothing leaks
        wait_until(lambda: all(v == 0 for v in router.inflight().values()), 5,
                   what=lambda: "in-flight counts of the dead data plane to go: %s" % router.inflight())
        st = router.status()
        self.assertEqual([d["pid"] for d in st["dp"]], [new], st["dp"])

        # the registry survived: same instances, all selectable, and nobody re-registered
        self.assertEqual(router.registered_urls(), sorted(s.url for s in sims))
        self.assertEqual(len(router.selectable_urls()), 2)
        self.assertEqual(self.all_ok(router), [200] * 20)
        for s in sims:
            self.assertEqual(s.stats()["register_ok"], 1, "%s re-registered" % s.name)

    def test_control_plane_kill_9(self):
        router, sims = self.start_fleet()
        dp = router.serving_dp()
        self.assertIsNotNone(dp)
        router.proc.kill(signal.SIGKILL)
        router.proc.popen.wait(fdharness.scaled(5))

        # the data plane keeps routing on the last table
        self.assertEqual(self.all_ok(router, 30), [200] * 30)
        self.assertEqual(router.registered_urls(), sorted(s.url for s in sims))
        self.assertTrue(fdharness.pid_alive(dp))

        # fdctl still reads the table from shared memory, and says the control plane is gone
        instances = router.registered_local()
        self.assertEqual(sorted(i["url"] for i in instances), sorted(s.url for s in sims))
        self.assertTrue(all(i["selectable"] and i["inflight"] == 0 for i in instances), instances)
        st = router.status()
        self.assertIs(st["cp"]["alive"], False)
        self.assertEqual([d["pid"] for d in st["dp"]], [dp])
        self.assertIn("NOT RUNNING", router.fdctl("status").stdout)

        # registration needs the control plane: refused clearly, routing unaffected
        r = router.register(sims[0].register_payload())
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json(), {"code": 503, "msg": "control plane unavailable"})
        self.assertEqual(self.all_ok(router, 4), [200] * 4)


if __name__ == "__main__":
    fdharness.main()
