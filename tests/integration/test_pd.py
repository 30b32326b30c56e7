"""tests/integration/test_pd.py - splitwise (prefill/decode) mode end to end: both legs get the
same request_id and disaggregate_info, the client gets exactly the decode stream with its status,
prefill counters are released when the prefill answers, and every failure case (a side failing
or hanging before its head, the client leaving during the prefill) ends with the right answer
and every counter back at zero. Also /ready and /v1/abort_requests.
"""

import http.client
import json
import socket
import time

import fdharness
from fdharness import FdTestCase, wait_until

PD_ARGS = ["--transfer-protocol", "ipc,rdma", "--device-ids", "0", "--connector-port", "7100"]


class PdTest(FdTestCase):
    def start_pd(self, config=None, p_extra=(), d_extra=(), d_tokens=4, d_delay=0):
        cfg = {"proxy": {"first-byte-timeout-secs": 1.5, "connect-timeout-secs": 1}}
        for k, v in (config or {}).items():
            cfg.setdefault(k, {}).update(v)
        router = self.h.start_router(config=cfg, splitwise=True)
        p = self.h.start_sim(name="P", router=router, role="prefill", register_interval_secs=3600,
                             extra=PD_ARGS + list(p_extra))
        d = self.h.start_sim(name="D", router=router, role="decode", register_interval_secs=3600,
                             tokens=d_tokens, token_delay_ms=d_delay, extra=PD_ARGS + list(d_extra))
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="P and D selectable")
        return router, p, d

    def test_same_request_id_and_info_on_both_legs(self):
        router, p, d = self.start_pd()
        r = router.chat(fdharness.chat_body("hello pd", stream=True))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-router-prefill-url"), p.url)
        self.assertEqual(r.headers.get("x-router-decode-url"), d.url)
        events = fdharness.parse_sse(r.body)
        self.assertEqual(events[-1], "[DONE]")
        names = {json.loads(e)["sim_instance"] for e in events[:-1]}
        self.assertEqual(names, {"D"}, "the client sees exactly the decode stream")
        ps, ds = p.stats(), d.stats()
        self.assertTrue(ps["last_request_id"])
        self.assertEqual(ps["last_request_id"], ds["last_request_id"])
        self.assertEqual(ps["last_disaggregate_info"], ds["last_disaggregate_info"])
        info = ds["last_disaggregate_info"]
        self.assertEqual(info["prefill_ip"], fdharness.HOST)
        self.assertEqual(info["decode_ip"], fdharness.HOST)
        self.assertEqual(info["prefill_connector_port"], 7100)
        self.assertEqual(info["decode_device_ids"], ["0"])
        self.assertEqual(info["decode_tp_size"], 1)
        self.assertEqual(info["transfer_protocol"], "ipc", "same host, both list ipc, same tp")
        conn = http.client.HTTPConnection(fdharness.HOST, router.port, timeout=10)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(fdharness.chat_body("x", stream=True)),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        types = [v for k, v in resp.getheaders() if k.lower() == "content-type"]
        resp.read()
        conn.close()
        self.assertEqual(types, ["text/event-stream"], "the decode answer's own content type, once")
        router.wait_inflight_zero()

    def test_rdma_when_decode_lacks_ipc_and_client_id_kept(self):
        router, p, d = self.start_pd(d_extra=["--transfer-protocol", "rdma"])
        r = router.chat(fdharness.chat_body("x", request_id=12345))
        self.assertEqual(r.status, 200, r)
        ds = d.stats()
        self.assertEqual(ds["last_request_id"], 12345, "a client request_id of any JSON type is kept")
        self.assertEqual(ds["last_disaggregate_info"]["transfer_protocol"], "rdma")

    def test_decode_status_is_relayed(self):
        router, p, d = self.start_pd()
        d.set_fail("status", status=429)
        r = router.chat(fdharness.chat_body("x"))
        self.assertEqual(r.status, 429)
        router.wait_inflight_zero()

    def test_prefill_counters_released_when_prefill_answers(self):
        router, p, d = self.start_pd(d_tokens=100000, d_delay=100)
        s = fdharness.Stream(router.port, "/v1/chat/completions", fdharness.chat_body("long", stream=True))
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200)
        wait_until(lambda: router.inflight().get(p.url) == 0 and router.inflight().get(d.url) == 1, 5,
                   what=lambda: "P released, D held (now %s)" % router.inflight())
        s.close()
        router.wait_inflight_zero()

    def test_prefill_fails_before_head(self):
        router, p, d = self.start_pd(d_extra=["--first-token-delay-ms", "3000"])
        p.set_fail("close_before_head")
        r = router.chat(fdharness.chat_body("x", stream=True))
        self.assertEqual(r.status, 502)
        self.assertEqual(r.json(), {"error": "Failed to connect to backend service"})
        wait_until(lambda: d.stats()["cancelled"] >= 1, 5, what="the decode leg cancelled")
        router.wait_inflight_zero()

    def test_prefill_error_status_fails_the_request(self):
        router, p, d = self.start_pd(d_extra=["--first-token-delay-ms", "3000"])
        p.set_fail("status", status=500)
        r = router.chat(fdharness.chat_body("x", stream=True))
        self.assertEqual(r.status, 502)
        self.assertEqual(r.json(), {"error": "Prefill instance failed"})
        wait_until(lambda: d.stats()["cancelled"] >= 1, 5, what="the decode leg cancelled")
        router.wait_inflight_zero()

    def test_decode_fails_before_head(self):
        router, p, d = self.start_pd(p_extra=["--prefill-delay-ms", "3000"])
        d.set_fail("close_before_head")
        r = router.chat(fdharness.chat_body("x"))
        self.assertEqual(r.status, 502)
        wait_until(lambda: p.stats()["cancelled"] >= 1, 5, what="the prefill leg cancelled")
        router.wait_inflight_zero()

    def test_prefill_hangs(self):
        router, p, d = self.start_pd()
        p.set_fail("hang_before_head")
        t0 = time.monotonic()
        r = router.chat(fdharness.chat_body("x"))
        self.assertEqual(r.status, 504, r)
        self.assertLess(time.monotonic() - t0, fdharness.scaled(5))
        router.wait_inflight_zero()

    def test_decode_hangs(self):
        router, p, d = self.start_pd()
        d.set_fail("hang_before_head")
        r = router.chat(fdharness.chat_body("x"))
        self.assertEqual(r.status, 504, r)
        router.wait_inflight_zero()

    def test_client_leaves_during_prefill(self):
        router, p, d = self.start_pd(p_extra=["--prefill-delay-ms", "5000"],
                                     d_extra=["--first-token-delay-ms", "5000"])
        conn = http.client.HTTPConnection(fdharness.HOST, router.port, timeout=10)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(fdharness.chat_body("x", stream=True)),
                     headers={"Content-Type": "application/json"})
        wait_until(lambda: p.stats()["inflight"] == 1 and d.stats()["inflight"] == 1, 5, what="both legs started")
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        wait_until(lambda: p.stats()["cancelled"] >= 1 and d.stats()["cancelled"] >= 1, 5,
                   what="both legs cancelled")
        router.wait_inflight_zero()

    def test_no_pair_and_ready(self):
        router = self.h.start_router(splitwise=True)
        self.assertEqual(router.get("/ready").status, 503)
        r = router.chat(fdharness.chat_body("x"))
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json(), {"error": "No available prefill/decode workers"})
        p = self.h.start_sim(name="P", router=router, role="prefill", extra=PD_ARGS)
        wait_until(lambda: len(router.selectable_urls()) == 1, 10, what="P selectable")
        self.assertEqual(router.chat(fdharness.chat_body("x")).status, 503, "a prefill alone is no pair")
        self.assertEqual(router.get("/ready").status, 503)
        self.h.start_sim(name="D", router=router, role="decode", extra=PD_ARGS)
        wait_until(lambda: router.get("/ready").status == 200, 10, what="ready with a pair")
        self.assertEqual(router.get("/ready").json()["infer_ready"], True)
        self.assertEqual(router.chat(fdharness.chat_body("x")).status, 200)
        del p

    def test_health_generate_probes_prefill_and_decode(self):
        router, p, d = self.start_pd()
        r = router.get("/health_generate")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual((body["code"], body["msg"]), (200, "Health check complete"))
        self.assertEqual(sorted((i["url"], i["role"], i["healthy"]) for i in body["instances"]),
                         sorted([(p.url, "prefill", True), (d.url, "decode", True)]))
        p.set_health(False)
        body = router.get("/health_generate").json()
        self.assertEqual({i["url"]: i["healthy"] for i in body["instances"]}[p.url], False)

    def test_prefill_cache_aware_keeps_groups_on_their_prefill(self):
        router = self.h.start_router(config={"scheduler": {"prefill-policy": "cache_aware", "cache-block-size": 4}},
                                     splitwise=True)
        prefills = [self.h.start_sim(name="P%d" % i, router=router, role="prefill", register_interval_secs=3600,
                                     extra=PD_ARGS).url for i in range(2)]
        self.h.start_sim(name="D", router=router, role="decode", register_interval_secs=3600, extra=PD_ARGS)
        wait_until(lambda: len(router.selectable_urls()) == 3, 10, what="P0, P1 and D selectable")
        group_a = "group a shares this long system prompt about gardening; " * 3
        group_b = "Sailing is what another long system prompt is about; " * 3  # no block in common with a

        # a new group goes where its hash says and is recorded there
        a0 = router.chat(fdharness.chat_body(group_a + "question 0")).headers["x-router-prefill-url"]
        self.assertIn(a0, prefills)
        router.wait_inflight_zero()
        for q in range(1, 4):  # idle: without the tree these would be placed anew
            r = router.chat(fdharness.chat_body(group_a + "question %d" % q))
            self.assertEqual(r.headers["x-router-prefill-url"], a0, "group a stays on its prefill")
        b = {router.chat(fdharness.chat_body(group_b + "question %d" % q)).headers["x-router-prefill-url"]
             for q in range(3)}
        self.assertEqual(len(b), 1, "group b, new and idle, goes to one prefill and stays there: %s" % b)

    def test_abort_ends_a_stream_and_aggregates(self):
        router, p, d = self.start_pd(d_tokens=100000, d_delay=50)
        self.assertEqual(router.post("/v1/abort_requests", {"req_ids": []}).status, 400)
        bad = router.post("/v1/abort_requests", {"foo": 1})
        self.assertEqual(bad.status, 400)
        self.assertEqual(bad.json(), {"error": "must provide abort_all=true or req_ids"})
        s = fdharness.Stream(router.port, "/v1/chat/completions",
                             fdharness.chat_body("long", stream=True, request_id="abort-me"))
        self.addCleanup(s.close)
        wait_until(lambda: d.stats()["inflight"] == 1, 5, what="decode streaming")
        r = router.post("/v1/abort_requests", {"req_ids": ["abort-me", "nobody"]})
        self.assertEqual(r.status, 200, r)
        res = r.json()
        self.assertEqual([a["request_id"] for a in res["result"]["aborted"]], ["abort-me"])
        self.assertEqual(res["result"]["not_found"], ["nobody"])
        self.assertEqual(sorted(i["url"] for i in res["instances"]), sorted([p.url, d.url]))
        self.assertEqual(res["failed"], [])
        events = [e for _, e in s.events()]
        self.assertEqual(events[-1], "[DONE]", "the aborted stream ends cleanly")
        self.assertEqual(json.loads(events[-2])["choices"][0]["finish_reason"], "abort")
        router.wait_inflight_zero()


if __name__ == "__main__":
    fdharness.main()
