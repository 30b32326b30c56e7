"""tests/integration/test_proxy.py - the inference proxy as clients rely on it: bodies relayed
byte for byte under concurrency, streams relayed as they are produced, upstream statuses passed
through, failures before the response head retried on another instance, the Go router's error
bodies, cancellation of abandoned streams, the first-byte timeout, and load counters that always
return to zero.
"""

import concurrent.futures
import re
import time

import fdharness
from fdharness import FdTestCase, wait_until

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
CREATED = re.compile(rb'"created":\d+')


def normalise(body):
    """fd-sim's answer is a function of the request body, except its creation time (seconds)."""
    return CREATED.sub(b'"created":0', body)


class ProxyTest(FdTestCase):
    def start(self, n_sims=1, config=None, **sim_args):
        router = self.h.start_router(config=config)
        sims = [self.h.start_sim(name="sim-%s" % "abcdefgh"[i], **sim_args) for i in range(n_sims)]
        for s in sims:
            router.register_sim(s)
        return router, sorted(sims, key=lambda s: s.url)

    def test_bodies_are_relayed_exactly_under_concurrency(self):
        router, sims = self.start(3, config={"scheduler": {"policy": "request_num"}})
        by_name = {s.name: s for s in sims}

        def one(i):
            stream = i % 2 == 0
            path = CHAT if i % 3 else COMPLETIONS
            body = {"model": "m", "stream": stream, "request_id": "it-%d" % i, "sim_tokens": 1 + i % 9}
            if path == CHAT:
                body["messages"] = [{"role": "user", "content": "question number %d" % i}]
            else:
                body["prompt"] = "prompt number %d" % i
            via = fdharness.post(router.port, path, body, timeout=30)
            if via.status != 200:
                return "request %d: status %d %r" % (i, via.status, via.body[:200])
            name = via.headers.get("x-sim-instance")
            if name not in by_name:
                return "request %d: unknown instance %r" % (i, name)
            direct = fdharness.post(by_name[name].port, path, body, timeout=30)
            if normalise(via.body) != normalise(direct.body):
                return "request %d via %s differs:\n router: %r\n direct: %r" % (i, name, via.body, direct.body)
            if stream and not via.body.endswith(b"data: [DONE]\n\n"):
                return "request %d: stream not terminated: %r" % (i, via.body[-60:])
            return name

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(2000)))
        errors = [r for r in results if r not in by_name]
        self.assertEqual(errors[:5], [], "%d of 2000 requests went wrong" % len(errors))
        served = {name: results.count(name) for name in by_name}
        self.assertEqual(sum(served.values()), 2000)
        self.assertTrue(all(n > 0 for n in served.values()), "every instance took load: %s" % served)
        for s in sims:  # each sim answered its share through the router and as many directly
            self.assertEqual(s.stats()["requests"], 2 * served[s.name], s.name)

        counts = router.inflight()
        self.assertEqual(sorted(counts), [s.url for s in sims])
        router.wait_inflight_zero(timeout=5)
        self.assertTrue(all(i["tokens"] == 0 for i in router.registered_local()), router.registered_local())

    def test_stream_is_relayed_as_tokens_are_produced(self):
        router, (sim,) = self.start(1, tokens=6, token_delay_ms=200)
        start = time.monotonic()
        st = fdharness.Stream(router.port, CHAT, fdharness.chat_body("tell me", stream=True))
        try:
            self.assertEqual(st.status, 200)
            self.assertTrue(st.headers.get("content-type", "").startswith("text/event-stream"), st.headers)
            events = list(st.events())
        finally:
            st.close()
        data = [d for _, d in events]
        self.assertEqual(data[-1], "[DONE]")
        tokens = [t for t, d in events if d != "[DONE]"]
        self.assertEqual(len(tokens), 6, data)
        arrivals = [start] + tokens
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        # fd-sim emits one token every 200 ms: a router that buffered would deliver them together
        self.assertTrue(all(g >= 0.15 for g in gaps), "gaps between events: %s" % ["%.3f" % g for g in gaps])
        router.wait_inflight_zero()

    def test_upstream_status_passes_through(self):
        router, (sim,) = self.start(1)
        sim.set_fail("status", status=503)
        r = router.chat(fdharness.chat_body())
        self.assertEqual(r.status, 503, "the Go router answered 200 here; fd-router relays the real status")
        self.assertEqual(r.json()["error"]["message"], "fd-sim: injected failure")
        sim.set_fail("status", status=429, count=1)
        r = router.chat(fdharness.chat_body(stream=True))
        self.assertEqual(r.status, 429, r)
        sim.set_fail("none")
        self.assertEqual(router.chat(fdharness.chat_body()).status, 200)
        router.wait_inflight_zero()

    def test_dead_instance_is_retried_on_another(self):
        # a long health interval keeps the dead instance selectable: only retries can save requests
        router, sims = self.start(3, config={"manager": {"health-check-interval-secs": 120},
                                             "scheduler": {"policy": "request_num"}})
        dead = sims[0]  # first in URL order: request_num's choice on ties
        dead.proc.kill()
        dead.proc.popen.wait(fdharness.scaled(5))

        def one(i):
            r = router.chat(fdharness.chat_body("q%d" % i, stream=i % 2 == 0))
            return r.status, r.headers.get("x-sim-instance")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(100)))
        self.assertEqual([r for r in results if r[0] != 200], [])
        self.assertNotIn(dead.name, {name for _, name in results})
        self.assertEqual({name for _, name in results} - {s.name for s in sims[1:]}, set())
        entry = [i for i in router.registered_local() if i["url"] == dead.url][0]
        self.assertGreater(entry["failures_total"], 0, "the dead instance was tried (and failed over)")
        router.wait_inflight_zero()

    def test_close_before_head_is_retried_on_another(self):
        router, (bad, good) = self.start(2, config={"manager": {"health-check-interval-secs": 120}})
        bad.set_fail("close_before_head")
        for i in range(20):
            r = router.chat(fdharness.chat_body("q%d" % i, stream=i % 2 == 0))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("x-sim-instance"), good.name)
        self.assertGreater(bad.stats()["failed"], 0, "requests did reach the failing instance first")
        self.assertEqual(good.stats()["completed"], 20)
        router.wait_inflight_zero()

    def test_no_instance_answers_502(self):
        router = self.h.start_router()
        for stream in (False, True):
            r = router.chat(fdharness.chat_body(stream=stream))
            self.assertEqual(r.status, 502)
            self.assertEqual(r.json(), {"error": "Failed to select worker"})
            self.assertEqual(r.headers.get("content-type", "").split(";")[0], "application/json")
        r = router.post(COMPLETIONS, {"prompt": "x"})
        self.assertEqual((r.status, r.json()), (502, {"error": "Failed to select worker"}))

    def test_bad_json_answers_400(self):
        router, (sim,) = self.start(1)
        for body in ("{not json", "[1, 2]", '"text"', '{"a":1} trailing'):
            with self.subTest(body=body):
                r = fdharness.post(router.port, CHAT, body)
                self.assertEqual(r.status, 400, r)
                self.assertEqual(r.json(), {"error": "Invalid JSON format"})
        self.assertEqual(sim.stats()["requests"], 0, "nothing was forwarded")

    def test_client_disconnect_cancels_the_upstream(self):
        router, (sim,) = self.start(1, tokens=200, token_delay_ms=50)
        st = fdharness.Stream(router.port, CHAT, fdharness.chat_body("long", stream=True))
        received = 0
        for _ in st.events():
            received += 1
            if received == 3:
                break
        self.assertEqual(sim.stats()["inflight"], 1)
        self.assertEqual(sum(router.inflight().values()), 1)
        st.close()
        wait_until(lambda: sim.stats()["cancelled"] == 1, 5, what=lambda: "the sim to see the cancellation: %s"
                   % sim.stats())
        self.assertEqual(sim.stats()["inflight"], 0)
        self.assertEqual(sim.stats()["completed"], 0)
        router.wait_inflight_zero()

    def test_first_byte_timeout_answers_504(self):
        router, (sim,) = self.start(1, config={"proxy": {"first-byte-timeout-secs": 1}})
        sim.set_fail("hang_before_head")
        for stream in (False, True):
            with self.subTest(stream=stream):
                t0 = time.monotonic()
                r = router.chat(fdharness.chat_body(stream=stream), timeout=30)
                elapsed = time.monotonic() - t0
                self.assertEqual(r.status, 504, r)
                self.assertEqual(r.json(), {"error": "Upstream timed out"})
                self.assertGreaterEqual(elapsed, 0.9)
                self.assertLess(elapsed, 1 + fdharness.scaled(1.5), "answered within the configured timeout")
                router.wait_inflight_zero()
                # the router gave up on the upstream leg: the sim sees its request go away
                wait_until(lambda: sim.stats()["inflight"] == 0, 5, what="the hung request to be cancelled")
        sim.set_fail("none")
        self.assertEqual(router.chat(fdharness.chat_body()).status, 200)


if __name__ == "__main__":
    fdharness.main()
