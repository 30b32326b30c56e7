"""tests/integration/test_request_framing.py - a client request whose body framing is ambiguous
(two Content-Length lines, equal or not; Content-Length with Transfer-Encoding: chunked; two
Transfer-Encoding lines) gets a 400 JSON error and its connection is closed, so the bytes after
the body h2o chose never run as a second (smuggled) request. One framing header still works,
keep-alive included. Requests sent while one is served are answered in order (ReadAheadTest).
"""

import json
import socket
import time

import fdharness
from fdharness import HOST, FdTestCase

BODY = json.dumps(fdharness.chat_body("hi")).encode()
SMUGGLED = b"GET /registered HTTP/1.1\r\nHost: x\r\n\r\n"


def exchange(port, data, timeout=5.0):
    """Send raw bytes, read until the router closes (or timeout); return (bytes, closed)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + fdharness.scaled(timeout)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
        return out, False
    finally:
        s.close()


def responses(raw):
    """[(status, headers dict, body)] of the HTTP/1.1 responses in raw (Content-Length framed)."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


def chat_head(*framing):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + b"".join(framing) + b"\r\n")


def chunked(body):
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


class RequestFramingTest(FdTestCase):
    def setUp(self):
        super().setUp()
        self.router = self.h.start_router()
        self.sim = self.h.start_sim(router=self.router)
        fdharness.wait_until(lambda: len(self.router.selectable_urls()) == 1, 10, what="the sim selectable")

    def refused(self, data, what):
        raw, closed = exchange(self.router.port, data)
        rs = responses(raw)
        self.assertEqual(len(rs), 1, "%s: exactly one response, got %r" % (what, raw[:300]))
        status, headers, body = rs[0]
        self.assertEqual(status, 400, what)
        self.assertIn("application/json", headers.get("content-type", ""), what)
        self.assertIn("error", json.loads(body), what)
        self.assertEqual(headers.get("connection"), "close", what)
        self.assertTrue(closed, "%s: the router closes the connection" % what)

    def test_ambiguous_framing_is_refused_and_closes(self):
        n = b"%d" % len(BODY)
        cases = {
            "two equal Content-Length": chat_head(b"Content-Length: " + n + b"\r\n",
                                                  b"Content-Length: " + n + b"\r\n") + BODY + SMUGGLED,
            "two different Content-Length": chat_head(b"Content-Length: " + n + b"\r\n",
                                                      b"content-length: %d\r\n" % (len(BODY) + len(SMUGGLED)))
            + BODY + SMUGGLED,
            "Content-Length and chunked": chat_head(b"Content-Length: " + n + b"\r\n",
                                                    b"Transfer-Encoding: chunked\r\n") + chunked(BODY) + SMUGGLED,
            "chunked and Content-Length": chat_head(b"Transfer-Encoding: chunked\r\n",
                                                    b"Content-Length: 5\r\n") + chunked(BODY) + SMUGGLED,
            "two Transfer-Encoding": chat_head(b"Transfer-Encoding: chunked\r\n",
                                               b"Transfer-Encoding: chunked\r\n") + chunked(BODY) + SMUGGLED,
            "a GET with two Content-Length": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                             b"Content-Length: 0\r\n\r\n" + SMUGGLED,
        }
        before = self.sim.stats()["requests"]
        for what, data in cases.items():
            with self.subTest(case=what):
                self.refused(data, what)
        self.assertEqual(self.sim.stats()["requests"], before, "nothing refused reached the instance")

    def test_one_framing_header_is_served_with_keep_alive(self):
        n = b"%d" % len(BODY)
        one = chat_head(b"Content-Length: " + n + b"\r\n") + BODY
        two = chat_head(b"Transfer-Encoding: chunked\r\n") + chunked(BODY)
        raw, _ = exchange(self.router.port, one + two + SMUGGLED, timeout=3)
        rs = responses(raw)
        self.assertEqual([r[0] for r in rs], [200, 200, 200], raw[:500])


def chat(tokens, **extra):
    """A whole (Content-Length) chat request whose answer has `tokens` tokens."""
    body = json.dumps(fdharness.chat_body("hi", sim_tokens=tokens, **extra)).encode()
    return chat_head(b"Content-Length: %d\r\n" % len(body)) + body


def token_counts(rs):
    return [len(json.loads(b)["choices"][0]["message"]["content"].split()) for _, _, b in rs]


class ReadAheadTest(FdTestCase):
    """Bytes that arrive while a request is served (the data plane keeps reading then, to spare
    two epoll_ctl per request, and stops at the first bytes) wait for their turn: pipelined
    requests are answered in order, a flood of them too, and a client gone meanwhile costs
    nothing else."""

    def setUp(self):
        super().setUp()
        self.router = self.h.start_router()
        self.sim = self.h.start_sim(router=self.router)
        fdharness.wait_until(lambda: len(self.router.selectable_urls()) == 1, 10, what="the sim selectable")

    def serving_one(self):
        fdharness.wait_until(lambda: sum(self.router.inflight().values()) == 1, 10, what="the slow request in flight")

    def read_responses(self, s, n, timeout=10.0):
        raw = b""
        deadline = time.monotonic() + fdharness.scaled(timeout)
        while len(responses(raw)) < n and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        return responses(raw)

    def test_requests_sent_while_one_is_served_are_answered_in_order(self):
        big = chat(5, padding="x" * 20000)  # above the read-ahead body size: served the old way
        rest = [chat(2), chat(3), big, chat(4)]
        s = socket.create_connection((HOST, self.router.port), timeout=fdharness.scaled(10))
        try:
            s.sendall(chat(1, sim_first_token_delay_ms=300))
            self.serving_one()
            for data in rest:
                s.sendall(data)
            rs = self.read_responses(s, 5)
        finally:
            s.close()
        self.assertEqual([r[0] for r in rs], [200] * 5)
        self.assertEqual(token_counts(rs), [1, 2, 3, 5, 4], "answers in request order")

    def test_a_pipelined_flood_behind_a_slow_request_is_answered_in_order(self):
        # 100 requests of about 1.4 KiB behind a slow one: more than one read's worth
        queued = b"".join(chat(1 + i % 7, padding="y" * 1300) for i in range(100))
        s = socket.create_connection((HOST, self.router.port), timeout=fdharness.scaled(10))
        try:
            s.sendall(chat(9, sim_first_token_delay_ms=300))
            self.serving_one()
            s.sendall(queued)
            rs = self.read_responses(s, 101, timeout=20)
        finally:
            s.close()
        self.assertEqual([r[0] for r in rs], [200] * 101)
        self.assertEqual(token_counts(rs), [9] + [1 + i % 7 for i in range(100)])

    def test_a_client_gone_while_served_leaves_the_router_serving(self):
        for _ in range(3):
            s = socket.create_connection((HOST, self.router.port), timeout=fdharness.scaled(10))
            s.sendall(chat(1, sim_first_token_delay_ms=200))
            self.serving_one()
            s.close()
            self.router.wait_inflight_zero()
        raw, _ = exchange(self.router.port, chat(2) + chat(3), timeout=3)
        self.assertEqual(token_counts(responses(raw)), [2, 3])


if __name__ == "__main__":
    fdharness.main()
