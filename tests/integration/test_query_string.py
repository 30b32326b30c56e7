"""tests/integration/test_query_string.py - the client's `?query` reaches the instance as sent:
in mixed mode, and on both legs (prefill and decode) in splitwise mode.
"""

import json

import fdharness
from fdharness import FdTestCase, wait_until

PD_ARGS = ["--transfer-protocol", "ipc,rdma", "--device-ids", "0", "--connector-port", "7100"]
PATH = "/v1/chat/completions?trace=1&x=%2Fa%20b"


class QueryStringTest(FdTestCase):
    def post_with_query(self, router):
        body = json.dumps(fdharness.chat_body("hello query")).encode()
        r = router.post(PATH, body, headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)

    def test_mixed_mode_forwards_the_query(self):
        router = self.h.start_router()
        sim = self.h.start_sim(name="m", router=router)
        wait_until(lambda: len(router.selectable_urls()) == 1, 10, what="the instance selectable")
        self.post_with_query(router)
        self.assertEqual(sim.stats()["last_path"], PATH)

    def test_both_pd_legs_forward_the_query(self):
        router = self.h.start_router(splitwise=True)
        p = self.h.start_sim(name="P", router=router, role="prefill", register_interval_secs=3600, extra=PD_ARGS)
        d = self.h.start_sim(name="D", router=router, role="decode", register_interval_secs=3600, extra=PD_ARGS)
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="P and D selectable")
        self.post_with_query(router)
        self.assertEqual(p.stats()["last_path"], PATH, "prefill leg")
        self.assertEqual(d.stats()["last_path"], PATH, "decode leg")


if __name__ == "__main__":
    fdharness.main()
