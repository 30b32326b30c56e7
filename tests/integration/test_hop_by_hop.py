"""tests/integration/test_hop_by_hop.py - request headers that are hop-by-hop by the
client's own word (named in its Connection header) are not forwarded to the instance.
"""

import json
import socket
import threading

import fdharness
from fdharness import HOST, FdTestCase, wait_until

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
          b"Connection: close\r\n\r\n{}")


class Recorder:
    """An instance on 127.0.0.1 that answers every request with a small JSON body and keeps the
    request heads of everything but health checks."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.heads = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head = data.partition(b"\r\n\r\n")[0]
                    if not head.startswith(b"GET /health"):
                        self.heads.append(head.decode("latin-1"))
                    conn.sendall(ANSWER)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


BODY = json.dumps(fdharness.chat_body("hi")).encode()


class HopByHopRequestTest(FdTestCase):
    def setUp(self):
        super().setUp()
        self.inst = Recorder()
        self.addCleanup(self.inst.close)
        self.router = self.h.start_router()
        r = self.router.register({"role": "mixed", "host_ip": HOST, "port": self.inst.port})
        self.assertEqual(r.status, 200, r)
        wait_until(lambda: len(self.router.selectable_urls()) == 1, 10, what="the instance selectable")

    def test_headers_named_in_connection_are_not_forwarded(self):
        r = self.router.post("/v1/chat/completions", BODY,
                             headers={"Content-Type": "application/json", "Connection": "keep-alive, X-Hop",
                                      "X-Hop": "secret", "X-End": "kept"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.inst.heads), 1)
        head = self.inst.heads[0].lower()
        self.assertNotIn("x-hop", head)
        self.assertIn("x-end: kept", head)


if __name__ == "__main__":
    fdharness.main()
