"""tests/integration/test_access_log.py - log.access-log (off by default): one JSON line per
request with its time, route, status, instance(s), request_id, time to first byte, duration,
bytes and outcome, to stdout or to ./logs/access.log beside the router's log; log.format: json
turns the router's own lines into JSON objects.
"""

import json
import os

import fdharness
from fdharness import FdTestCase, wait_until

PD_ARGS = ["--transfer-protocol", "ipc,rdma", "--device-ids", "0", "--connector-port", "7100"]


def json_lines(text):
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def access_lines(text):
    return [d for d in json_lines(text) if "route" in d]


class AccessLogTest(FdTestCase):
    def test_off_by_default(self):
        router = self.h.start_router()
        sim = self.h.start_sim(name="a", router=router)
        wait_until(lambda: router.selectable_urls() == [sim.url], 10, what="a selectable")
        self.assertEqual(router.chat(fdharness.chat_body("hi")).status, 200)
        self.assertEqual(access_lines(router.proc.stdout()), [])

    def test_stdout_one_line_per_request(self):
        router = self.h.start_router(config={"log": {"access-log": "stdout"}})
        sim = self.h.start_sim(name="a", router=router)
        wait_until(lambda: router.selectable_urls() == [sim.url], 10, what="a selectable")
        r = router.post("/v1/chat/completions", fdharness.chat_body("hello"), headers={"X-Request-Id": "rid-1"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(router.get("/nope").status, 404)

        def logged():
            lines = access_lines(router.proc.stdout())
            return lines if len([d for d in lines if d["route"] in ("/v1/chat/completions", "/nope")]) >= 2 else None

        lines = wait_until(logged, 10, what="two access lines")
        chat = [d for d in lines if d["route"] == "/v1/chat/completions"][0]
        self.assertEqual(chat["status"], 200)
        self.assertEqual(chat["method"], "POST")
        self.assertEqual(chat["instance"], sim.url)
        self.assertEqual(chat["request_id"], "rid-1")
        self.assertEqual(chat["outcome"], "ok")
        self.assertEqual(chat["bytes"], len(r.body))
        self.assertGreaterEqual(chat["duration_ms"], chat["ttfb_ms"])
        self.assertRegex(chat["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        nope = [d for d in lines if d["route"] == "/nope"][0]
        self.assertEqual((nope["status"], nope["instance"], nope["outcome"]), (404, None, None))

    def test_file_beside_the_router_log_and_json_router_log(self):
        cwd = os.path.join(self.h.tmpdir, "state")
        os.mkdir(cwd)
        router = self.h.start_router(config={"log": {"output": "file", "access-log": "file", "format": "json"}},
                                     splitwise=True, cwd=cwd)
        p = self.h.start_sim(name="P", router=router, role="prefill", register_interval_secs=3600, extra=PD_ARGS)
        d = self.h.start_sim(name="D", router=router, role="decode", register_interval_secs=3600, extra=PD_ARGS)
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="P and D selectable")
        self.assertEqual(router.chat(fdharness.chat_body("pd")).status, 200)
        access = os.path.join(cwd, "logs", "access.log")

        def chat_line():
            with open(access) as f:
                lines = [x for x in access_lines(f.read()) if x["route"] == "/v1/chat/completions"]
            return lines[0] if lines else None

        line = wait_until(chat_line, 10, what="the access line in logs/access.log")
        self.assertEqual((line["prefill"], line["decode"], line["instance"]), (p.url, d.url, d.url))
        self.assertRegex(line["request_id"], r"^[0-9a-f-]{36}$", "the request_id the router generated")
        with open(os.path.join(cwd, "logs", "router.log")) as f:
            own = json_lines(f.read())
        self.assertTrue(own, "the router's own log has JSON lines")
        for entry in own:
            self.assertEqual(sorted(entry), ["file", "level", "line", "msg", "time"], entry)
            self.assertNotIn("route", entry)
        self.assertTrue(any("control plane ready" in e["msg"] for e in own))


if __name__ == "__main__":
    fdharness.main()
