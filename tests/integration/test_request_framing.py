"""tests/integration/test_request_framing.py - a client request whose body framing is ambiguous
(two Content-Length lines, equal or not; Content-Length with Transfer-Encoding: chunked; two
Transfer-Encoding lines) gets a 400 JSON error and its connection is closed, so the bytes after
the body h2o chose never run as a second (smuggled) request. One framing header still works,
keep-alive included.
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


if __name__ == "__main__":
    fdharness.main()
