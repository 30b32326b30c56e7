"""tests/integration/test_hostile_instance.py - an instance that breaks HTTP/1.1 in its answers
must fail only the exchanges it takes part in: the data plane and the control plane keep their
pids (h2o 2.2's client aborted the process on a malformed Content-Length), the client gets a 502
or a broken stream, and other instances keep serving. Includes the crash-loop repro: a health
endpoint answering `Content-Length: -1` used to kill the control plane at every probe. Answers
that break the protocol are counted per instance in /metrics (kept in shared memory, so the
count survives a data-plane crash) and logged at most once a second per instance.
"""

import http.client
import json
import signal
import socket
import threading
import time

import fdharness
from fdharness import HOST, FdTestCase, wait_until

OK_HEALTH = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

# answers to a completion request, each one a protocol violation
BAD_ANSWERS = {
    "cl_negative": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}",
    "cl_alpha": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}",
    "cl_trailing_space": b"HTTP/1.1 200 OK\r\nContent-Length: 2 \r\n\r\n{}",
    "cl_plus": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}",
    "cl_hex": b"HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\n{}",
    "cl_empty": b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n{}",
    "cl_list": b"HTTP/1.1 200 OK\r\nContent-Length: 2,2\r\n\r\n{}",
    "cl_minus_zero": b"HTTP/1.1 200 OK\r\nContent-Length: -0\r\n\r\n{}",
    "cl_huge": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n{}",
    "cl_twice": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "cl_and_chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "te_gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{}",
    "switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    "garbage": b"\x00\x01garbage that is not HTTP\r\n\r\n",
    "truncated_head": b"HTTP/1.1 200 OK\r\nContent-Ty",
    "huge_head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (4 * 1024 * 1024) + b"\r\nContent-Length: 2\r\n\r\n{}",
}
# answers that break after the head: the client's response must not end as if complete
BROKEN_BODIES = {
    "short_body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":",
    "bad_chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    "chunk_cut": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
}


# what the control plane's polls (GET /metrics, GET /v1/models) get unless a test says otherwise:
# an honest "no such route", so that only the answers under test count as protocol errors
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class Hostile:
    """A listener on 127.0.0.1 that answers /health with `health`, /metrics with `metrics`,
    /v1/models with `models` and anything else with `answer`, then closes the connection.
    `hits` counts the requests by path."""

    def __init__(self, health=OK_HEALTH):
        self.health = health
        self.metrics = NOT_FOUND
        self.models = NOT_FOUND
        self.hits = {}
        self.answer = BAD_ANSWERS["cl_negative"]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.completions = 0
        self.drip = False  # send the answer a byte every 50 ms
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        conn.settimeout(5)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                rest += chunk
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            self.hits[path] = self.hits.get(path, 0) + 1
            if head.startswith(b"GET /health"):
                conn.sendall(self.health)
            elif head.startswith(b"GET /metrics "):
                conn.sendall(self.metrics)
            elif head.startswith(b"GET /v1/models "):
                conn.sendall(self.models)
            else:
                self.completions += 1
                self.send(conn, self.answer)
        except OSError:
            pass
        finally:
            conn.close()

    def send(self, conn, answer):
        if not self.drip:
            conn.sendall(answer)
            return
        for i in range(len(answer)):
            if self.stopping:
                return
            conn.sendall(answer[i:i + 1])
            time.sleep(0.05)  # the slowness under test, not a wait for a condition

    def close(self):
        self.stopping = True
        self.sock.close()


# answers the client sees fail like the others but that are transport failures, not protocol errors
# (a close before the head or the body is complete)
NOT_PROTOCOL_ERRORS = {"truncated_head", "short_body", "chunk_cut"}


def protocol_errors(router, url):
    for line in router.get("/metrics", timeout=5).text().splitlines():
        if line.startswith('fd_router_instance_upstream_protocol_errors_total{url="%s",' % url):
            return int(line.rpartition(" ")[2])
    raise AssertionError("no protocol-error counter for %s" % url)


def chat_outcome(router):
    """'502', 'broken', or the status of a complete answer."""
    c = http.client.HTTPConnection(HOST, router.port, timeout=15)
    try:
        c.request("POST", "/v1/chat/completions", body=json.dumps(fdharness.chat_body("hi")).encode(),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        try:
            r.read()
        except (http.client.IncompleteRead, ConnectionError):
            return "broken"
        return str(r.status)
    except (http.client.RemoteDisconnected, ConnectionError):
        return "broken"
    finally:
        c.close()


class HostileInstanceTest(FdTestCase):
    def start(self, hostile, config=None):
        self.addCleanup(hostile.close)
        router = self.h.start_router(config=config)
        r = router.register({"role": "mixed", "host_ip": HOST, "port": hostile.port})
        self.assertEqual(r.status, 200, r)
        wait_until(lambda: len(router.selectable_urls()) == 1, 10, what="the hostile instance selectable")
        return router

    def test_protocol_violations_fail_the_request_only(self):
        hostile = Hostile()
        router = self.start(hostile)
        cp, dps = router.cp_pid, router.dp_pids()
        for name, answer in BAD_ANSWERS.items():
            with self.subTest(answer=name):
                hostile.answer = answer
                self.assertEqual(chat_outcome(router), "502", name)
        for name, answer in BROKEN_BODIES.items():
            with self.subTest(answer=name):
                hostile.answer = answer
                self.assertEqual(chat_outcome(router), "broken", name)
        self.assertEqual(router.cp_pid, cp, "the control plane survived")
        self.assertEqual(router.dp_pids(), dps, "the data plane survived")
        router.wait_inflight_zero()

        # a well-behaved instance next to it serves every request: the broken answers before a
        # head are retried on it
        sim = self.h.start_sim(name="good", router=router)
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="both selectable")
        hostile.answer = BAD_ANSWERS["cl_alpha"]
        for _ in range(10):
            self.assertEqual(chat_outcome(router), "200")
        self.assertGreater(sim.stats()["requests"], 0)
        self.assertEqual(router.dp_pids(), dps)
        router.wait_inflight_zero()

    def test_protocol_errors_are_counted_and_survive_a_data_plane_crash(self):
        hostile = Hostile()
        router = self.start(hostile)
        url = "http://%s:%d" % (HOST, hostile.port)
        self.assertEqual(protocol_errors(router, url), 0)
        for name, answer in list(BAD_ANSWERS.items()) + list(BROKEN_BODIES.items()):
            with self.subTest(answer=name):
                before = protocol_errors(router, url)
                hostile.answer = answer
                chat_outcome(router)
                after = protocol_errors(router, url)
                if name in NOT_PROTOCOL_ERRORS:
                    self.assertEqual(after, before, name)
                else:
                    self.assertGreater(after, before, name)
        total = protocol_errors(router, url)
        logged = [l for l in router.proc.stdout().splitlines() if "broke HTTP/1.1" in l and url in l]
        self.assertGreaterEqual(len(logged), 1, "the protocol errors are logged")
        self.assertLess(len(logged), total, "but not each one: at most one line a second per instance")

        old = router.serving_dp()
        fdharness.kill_pid(old, signal.SIGKILL, expect="fd-router-dp")
        wait_until(lambda: router.serving_dp() not in (None, old), 10, what="a new data plane")
        self.assertEqual(protocol_errors(router, url), total, "the count is kept in shared memory")

    def test_a_prefill_leg_that_breaks_http_is_counted(self):
        """PD mode: the prefill leg uses the same client; its protocol errors count on the prefill."""
        hostile = Hostile()
        self.addCleanup(hostile.close)
        router = self.h.start_router(config={"proxy": {"first-byte-timeout-secs": 2}}, splitwise=True)
        r = router.register({"role": "prefill", "host_ip": HOST, "port": hostile.port,
                             "transfer_protocol": ["ipc", "rdma"], "device_ids": ["0"], "connector_port": 7100})
        self.assertEqual(r.status, 200, r)
        self.h.start_sim(name="D", router=router, role="decode", register_interval_secs=3600,
                         extra=["--transfer-protocol", "ipc,rdma", "--device-ids", "0", "--connector-port", "7100"])
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="the hostile prefill and D selectable")
        url = "http://%s:%d" % (HOST, hostile.port)
        dps = router.dp_pids()
        hostile.answer = BAD_ANSWERS["cl_alpha"]
        for _ in range(3):
            self.assertNotEqual(chat_outcome(router), "200")
        wait_until(lambda: protocol_errors(router, url) >= 3, 5, what="three protocol errors on the prefill")
        self.assertEqual(router.dp_pids(), dps, "the data plane survived")

    def test_hop_by_hop_response_headers_are_not_relayed(self):
        hostile = Hostile()
        router = self.start(hostile)
        hostile.answer = (b"HTTP/1.1 200 OK\r\nConnection: x-secret, keep-alive\r\nX-Secret: 1\r\n"
                          b"Keep-Alive: timeout=5\r\nUpgrade: h2c\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\n{}")
        r = router.chat(fdharness.chat_body("hi"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-kept"), "2", "an end-to-end header is relayed")
        for name in ("x-secret", "keep-alive", "upgrade"):
            self.assertIsNone(r.headers.get(name), name)

    def test_slow_drip_head_is_cut_by_the_first_byte_timeout(self):
        hostile = Hostile()
        hostile.drip = True
        hostile.answer = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100 + b"\r\nContent-Length: 2\r\n\r\n{}"
        router = self.start(hostile, config={"proxy": {"first-byte-timeout-secs": 1}})
        cp, dps = router.cp_pid, router.dp_pids()
        t0 = time.monotonic()
        self.assertIn(chat_outcome(router), ("502", "504"))
        self.assertLess(time.monotonic() - t0, 5, "cut by the first-byte timeout, not by the drip's end")
        self.assertEqual((router.cp_pid, router.dp_pids()), (cp, dps))

    def test_bad_health_answer_does_not_kill_the_control_plane(self):
        hostile = Hostile(health=b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}")
        self.addCleanup(hostile.close)
        router = self.h.start_router()
        cp = router.cp_pid
        r = router.register({"role": "mixed", "host_ip": HOST, "port": hostile.port})
        self.assertNotEqual(r.status, 200, "a health check that breaks HTTP is a failed check")
        # each /register probes it again (the crash came at the probe)
        r = router.register({"role": "mixed", "host_ip": HOST, "port": hostile.port})
        self.assertNotEqual(r.status, 200)
        self.assertEqual(router.cp_pid, cp)
        self.assertTrue(fdharness.pid_alive(cp), "the control plane is alive")
        self.assertEqual(router.selectable_urls(), [])


if __name__ == "__main__":
    fdharness.main()
