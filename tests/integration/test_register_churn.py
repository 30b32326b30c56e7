"""tests/integration/test_register_churn.py - registration churn (issue 9): a re-registration
with changed metadata keeps the instance's slot (its in-flight load and its /metrics series), a
full table still accepts instances that are already registered, and 1,000 registrations arriving
at once are all accepted while the control plane is up.

The 1,024 "instances" of the bulk tests are listening sockets of this process answering every
request with 200 (all the router's registration probe asks of them), on 127.0.0.1.
"""

import os
import selectors
import socket
import threading
import time

import fdharness as fh
from fdharness import HOST, FdTestCase, wait_until


class HealthyListeners:
    """n listening sockets on 127.0.0.1 answering any request with 200 and closing."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"

    def __init__(self, n):
        self.sel = selectors.DefaultSelector()
        self.ports = []
        self.listeners = []
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            s.listen(64)
            s.setblocking(False)
            self.listeners.append(s)
            self.ports.append(s.getsockname()[1])
            self.sel.register(s, selectors.EVENT_READ, None)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            for key, _ in self.sel.select(0.1):
                if key.data is None:
                    try:
                        c, _ = key.fileobj.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    self.sel.register(c, selectors.EVENT_READ, b"")
                    continue
                c = key.fileobj
                try:
                    chunk = c.recv(65536)
                except OSError:
                    chunk = b""
                buf = key.data + chunk
                if chunk and b"\r\n\r\n" not in buf:
                    self.sel.modify(c, selectors.EVENT_READ, buf)
                    continue
                self.sel.unregister(c)
                if chunk:
                    try:
                        c.setblocking(True)
                        c.settimeout(2)
                        c.sendall(self.ANSWER)
                    except OSError:
                        pass
                c.close()

    def close(self):
        self.stopping = True
        self.thread.join(5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def register_all_at_once(port, bodies, timeout):
    """POST /register with each body on its own connection, all sent before any answer is read.
    Returns the list of statuses (0: no answer in time)."""
    sel = selectors.DefaultSelector()
    statuses = [0] * len(bodies)
    socks = []
    for i, body in enumerate(bodies):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(fh.scaled(5))
        s.connect((HOST, port))
        req = ("POST /register HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (HOST, port, len(body), body)).encode()
        s.sendall(req)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, [i, b""])
    deadline = time.monotonic() + fh.scaled(timeout)
    left = len(bodies)
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            i, buf = key.data
            try:
                chunk = key.fileobj.recv(65536)
            except OSError:
                chunk = b""
            buf += chunk
            key.data[1] = buf
            if not chunk or b"\r\n\r\n" in buf:
                line = buf.split(b"\r\n", 1)[0].split()
                statuses[i] = int(line[1]) if len(line) >= 2 and line[1].isdigit() else -1
                sel.unregister(key.fileobj)
                left -= 1
    for s in socks:
        s.close()
    sel.close()
    return statuses


def payload(port, **extra):
    body = '{"role":"mixed","host_ip":"%s","port":%d' % (HOST, port)
    for k, v in extra.items():
        body += ',"%s":%d' % (k, v)
    return body + "}"


class RegisterChurn(FdTestCase):
    def test_changed_metadata_keeps_the_slot_and_its_load(self):
        sim = self.h.start_sim(tokens=40, token_delay_ms=50)
        r = self.h.start_router()
        r.register_sim(sim)
        before = {i["url"]: i for i in r.registered_local()}[sim.url]
        stream = fh.Stream(r.port, "/v1/chat/completions", fh.chat_body(stream=True))
        try:
            wait_until(lambda: r.inflight().get(sim.url) == 1, 5, what="one request in flight")
            r.register_sim(sim, metrics_port=sim.port + 1)
            rows = [i for i in r.registered_local() if i["url"] == sim.url]
            self.assertEqual(len(rows), 1, "one slot for the URL, not a retired one next to it: %s" % rows)
            after = rows[0]
            self.assertEqual((after["slot"], after["generation"]), (before["slot"], before["generation"]))
            self.assertEqual(after["inflight"], 1, "the request in flight is still counted")
            self.assertEqual([w["metrics_port"] for w in r.registered()["mixed"]], [str(sim.port + 1)])
            self.assertIn(b"[DONE]", stream.read_all(), "the stream in flight ran to its end")
        finally:
            stream.close()
        r.wait_inflight_zero()

    def test_full_table_accepts_known_instances_and_a_burst_gets_no_503(self):
        n = 1024  # SHM_MAX_INSTANCES
        inst = HealthyListeners(n)
        self.addCleanup(inst.close)
        r = self.h.start_router()
        first = register_all_at_once(r.port, [payload(p) for p in inst.ports[:1000]], 60)
        bad = [s for s in first if s != 200]
        self.assertEqual(bad, [], "%d of 1000 concurrent registrations were not 200: %s" % (
            len(bad), sorted(set(bad))))
        rest = register_all_at_once(r.port, [payload(p) for p in inst.ports[1000:]], 30)
        self.assertEqual(set(rest), {200})
        wait_until(lambda: sum(r.get("/registered_number").json().values()) == n, 10, what="a full table")
        # one more URL is refused: the table is full
        extra = HealthyListeners(1)
        self.addCleanup(extra.close)
        self.assertEqual(r.register({"role": "mixed", "host_ip": HOST, "port": extra.ports[0]}).status, 503)
        # registered ones are not: unchanged (a heartbeat) and with new metadata
        for body in (payload(inst.ports[0]), payload(inst.ports[1], metrics_port=inst.ports[1])):
            resp = fh.post(r.port, "/register", body)
            self.assertEqual(resp.status, 200, resp.text())


if __name__ == "__main__":
    fh.main()
