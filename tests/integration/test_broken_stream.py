"""tests/integration/test_broken_stream.py - an instance that dies in the middle of a streamed
answer: the client's response must end as a broken stream (no terminating chunk, no [DONE]),
never as a silent truncation that looks complete; in mixed and in splitwise mode, with every
counter back at zero.
"""

import http.client

import fdharness
from fdharness import FdTestCase, wait_until

PD_ARGS = ["--transfer-protocol", "ipc,rdma", "--device-ids", "0", "--connector-port", "7100"]


def read_until_broken(test, router):
    s = fdharness.Stream(router.port, "/v1/chat/completions", fdharness.chat_body("x", stream=True))
    test.addCleanup(s.close)
    test.assertEqual(s.status, 200)
    got = []
    with test.assertRaises(http.client.IncompleteRead, msg="the stream must end broken, not complete"):
        for _, data in s.events():
            got.append(data)
    test.assertGreaterEqual(len(got), 1, "the chunks before the failure were relayed")
    test.assertNotIn("[DONE]", got)


class BrokenStreamTest(FdTestCase):
    def test_mixed(self):
        router = self.h.start_router()
        sim = self.h.start_sim(name="s", router=router, tokens=20, token_delay_ms=20)
        wait_until(lambda: len(router.selectable_urls()) == 1, 10, what="the sim selectable")
        r = fdharness.post(sim.port, "/sim/fail", {"mode": "die_mid_stream", "after_chunks": 3}, timeout=5)
        self.assertEqual(r.status, 200, r)
        read_until_broken(self, router)
        router.wait_inflight_zero()

    def test_splitwise_decode_dies(self):
        router = self.h.start_router(splitwise=True)
        self.h.start_sim(name="P", router=router, role="prefill", extra=PD_ARGS)
        d = self.h.start_sim(name="D", router=router, role="decode", tokens=20, token_delay_ms=20, extra=PD_ARGS)
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="P and D selectable")
        r = fdharness.post(d.port, "/sim/fail", {"mode": "die_mid_stream", "after_chunks": 3}, timeout=5)
        self.assertEqual(r.status, 200, r)
        read_until_broken(self, router)
        router.wait_inflight_zero()


if __name__ == "__main__":
    fdharness.main()
