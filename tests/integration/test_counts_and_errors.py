"""tests/integration/test_counts_and_errors.py - /registered_number counts healthy instances only
(FastDeploy's FAQ reads 0 as "nothing healthy is registered"), while /registered still lists an
unhealthy instance until unhealthy-removal-secs; a body over proxy.max-body-mb, which h2o refuses
before any handler runs, gets a JSON 413 like every other error of the public port.
"""

import json
import socket

import fdharness
from fdharness import HOST, FdTestCase, wait_until


class CountsAndErrorsTest(FdTestCase):
    def test_registered_number_counts_healthy_instances(self):
        router = self.h.start_router(config={"manager": {"unhealthy-removal-secs": 3600}})
        a = self.h.start_sim(name="a", router=router, register_interval_secs=3600)
        b = self.h.start_sim(name="b", router=router, register_interval_secs=3600)
        wait_until(lambda: router.get("/registered_number").json()["mixed"] == 2, 10, what="both healthy")
        a.set_health(False)
        wait_until(lambda: router.get("/registered_number").json() == {"mixed": 1, "prefill": 0, "decode": 0}, 10,
                   what="only b counted")
        self.assertEqual(router.registered_urls(), sorted([a.url, b.url]), "a is still registered")
        b.set_health(False)
        wait_until(lambda: router.get("/registered_number").json()["mixed"] == 0, 10, what="nothing healthy: 0")
        a.set_health(True)
        wait_until(lambda: router.get("/registered_number").json()["mixed"] == 1, 10, what="a healthy again")

    def test_oversized_body_gets_json_413(self):
        router = self.h.start_router(config={"proxy": {"max-body-mb": 1}})
        size = 2 * 1024 * 1024
        with socket.create_connection((HOST, router.port), timeout=fdharness.scaled(5)) as s:
            # only the head: h2o answers from the Content-Length, before reading any of the body
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % size)
            data = b""
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < self.length(data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 413 "), head)
        self.assertIn(b"content-type: application/json", head.lower())
        self.assertEqual(json.loads(body), {"error": "request body larger than %d bytes (proxy.max-body-mb)"
                                                    % (1024 * 1024)})
        # the router still serves
        self.assertEqual(router.get("/health").status, 200)

    @staticmethod
    def length(data):
        for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                return int(line.split(b":", 1)[1])
        return 1 << 30


if __name__ == "__main__":
    fdharness.main()
