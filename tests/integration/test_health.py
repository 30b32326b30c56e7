"""tests/integration/test_health.py - health checking as an operator relies on it: an instance
failing its /health probes stops receiving requests only after health-failure-threshold
consecutive failures and comes back after health-success-threshold successes (hysteresis, not
one-strike removal), is removed after manager.unhealthy-removal-secs, and register.yaml
instances that are down at startup become selectable once they come up.
"""

import time

import fdharness
from fdharness import FdTestCase, wait_until

INTERVAL = 0.2


class HealthTest(FdTestCase):
    def health_of(self, router, url):
        for i in router.registered_local():
            if i["url"] == url:
                return i["health"]
        return None

    def served_by(self, router, n, stream=False):
        names = set()
        for i in range(n):
            r = router.chat(fdharness.chat_body("q%d" % i, stream=stream))
            self.assertEqual(r.status, 200, r)
            names.add(r.headers.get("x-sim-instance"))
        return names

    def test_thresholds_take_an_instance_out_and_back(self):
        router = self.h.start_router(config={"manager": {
            "health-check-interval-secs": INTERVAL, "health-failure-threshold": 3,
            "health-success-threshold": 2, "unhealthy-removal-secs": 600}})
        sims = sorted([self.h.start_sim(name="a"), self.h.start_sim(name="b")], key=lambda s: s.url)
        first, second = sims
        for s in sims:
            router.register_sim(s)
        both = {first.name, second.name}
        self.assertEqual(self.served_by(router, 4), both, "request_num takes tied instances in turn")

        t0 = time.monotonic()
        first.set_health(False)
        wait_until(lambda: self.health_of(router, first.url) == "unhealthy", 10, what="first marked unhealthy")
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 2 * INTERVAL * 0.9, "3 consecutive failed probes take at least 2 intervals")
        self.assertEqual(self.served_by(router, 6), {second.name})
        self.assertEqual(self.served_by(router, 4, stream=True), {second.name})
        self.assertIn(first.url, router.registered_urls(), "unhealthy but still registered")

        t0 = time.monotonic()
        first.set_health(True)
        wait_until(lambda: self.health_of(router, first.url) == "healthy", 10, what="first healthy again")
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, INTERVAL * 0.9, "2 consecutive good probes take at least 1 interval")
        self.assertEqual(self.served_by(router, 4), both, "first serves its turns again")
        router.wait_inflight_zero()

    def test_unhealthy_instance_is_removed_after_removal_time(self):
        removal = 1.0
        router = self.h.start_router(config={"manager": {
            "health-check-interval-secs": INTERVAL, "health-failure-threshold": 1,
            "unhealthy-removal-secs": removal}})
        a = self.h.start_sim(name="a")
        b = self.h.start_sim(name="b")
        router.register_sim(a)
        router.register_sim(b)
        a.set_health(False)
        wait_until(lambda: self.health_of(router, a.url) == "unhealthy", 10, what="a unhealthy")
        t0 = time.monotonic()
        self.assertEqual(router.registered_urls(), sorted([a.url, b.url]), "still registered while unhealthy")
        self.assertEqual(router.get("/registered_number").json()["mixed"], 1, "counts the healthy ones")
        wait_until(lambda: a.url not in router.registered_urls(), 10, what="a removed")
        self.assertGreaterEqual(time.monotonic() - t0, removal * 0.8, "kept until unhealthy-removal-secs")
        self.assertEqual(router.registered_urls(), [b.url])
        self.assertEqual(router.get("/registered_number").json(), {"mixed": 1, "prefill": 0, "decode": 0})
        self.assertEqual(self.served_by(router, 3), {b.name})
        # once removed, it takes a new registration to come back
        a.set_health(True)
        router.register_sim(a)
        self.assertEqual(router.registered_urls(), sorted([a.url, b.url]))

    def test_register_yaml_instance_down_at_start_joins_when_up(self):
        early = self.h.start_sim(name="early")
        late_port = fdharness.free_port()
        late_url = "http://127.0.0.1:%d" % late_port
        router = self.h.start_router(
            config={"scheduler": {"policy": "round_robin"},
                    "manager": {"health-check-interval-secs": INTERVAL, "health-success-threshold": 1}},
            register=[{"role": "mixed", "host_ip": "127.0.0.1", "port": early.port},
                      {"role": 0, "host_ip": "127.0.0.1", "port": str(late_port), "metrics_port": late_port}])

        wait_until(lambda: router.selectable_urls() == [early.url], 10, what="early selectable")
        self.assertIn(late_url, [i["url"] for i in router.registered_local()], "late is registered")
        self.assertNotEqual(self.health_of(router, late_url), "healthy")
        self.assertEqual(self.served_by(router, 4), {"early"})

        late = self.h.start_sim(name="late", port=late_port)
        wait_until(lambda: late_url in router.selectable_urls(), 10, what="late selectable once up")
        self.assertEqual(self.served_by(router, 6), {"early", "late"})
        self.assertEqual(sorted(router.registered_urls()), sorted([early.url, late_url]))


if __name__ == "__main__":
    fdharness.main()
