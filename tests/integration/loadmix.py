"""tests/integration/loadmix.py - a bounded, verifying load of streaming and non-streaming chat
requests against a router on 127.0.0.1, for the hot-upgrade test and bench/upgrade_latency.py.

Each worker thread keeps one keep-alive connection (http.client reconnects after a response that
says "Connection: close") and sends requests back to back, alternating as configured. Every
response is checked in full against what fd-sim generates for it: status 200, the whole body
(a chunked body cut short raises), and for a non-streamed answer the exact text, for a stream
every token event in order, the "stop" finish reason and the final `data: [DONE]`. Anything else
(socket error, non-2xx, truncated or wrong body) is a failure, recorded with its reason.

The load is bounded in count and in time and stops by itself. Standard library only.
"""

import http.client
import json
import threading
import time

HOST = "127.0.0.1"


def expected_text(tokens):
    return " ".join("tok%d" % i for i in range(tokens))


class Result:
    __slots__ = ("kind", "start", "first_byte", "end", "error")

    def __init__(self, kind, start):
        self.kind = kind
        self.start = start
        self.first_byte = None
        self.end = None
        self.error = None

    @property
    def latency(self):
        return self.end - self.start

    @property
    def ttfb(self):
        return self.first_byte - self.start


def _check_stream(data, tokens):
    events = []
    for ev in data.split(b"\n\n"):
        for line in ev.split(b"\n"):
            if line.startswith(b"data: "):
                events.append(line[6:].decode())
    if not events or events[-1] != "[DONE]":
        return "stream does not end with [DONE] (%d events)" % len(events)
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    if text != expected_text(tokens):
        return "stream text %r" % text[:200]
    if chunks[-1]["choices"][0].get("finish_reason") != "stop":
        return "last chunk has no stop finish_reason"
    return None


def _check_plain(data, tokens):
    doc = json.loads(data)
    text = doc["choices"][0]["message"]["content"]
    return None if text == expected_text(tokens) else "answer text %r" % text[:200]


class LoadMix:
    """workers threads; worker i streams when i % 2 == 1, else sends non-streamed requests.
    stream: sim_tokens stream_tokens, sim_token_delay_ms stream_delay_ms; plain: plain_tokens.
    pause_ms paces each worker (a pause after each response; 0 = back to back)."""

    def __init__(self, port, workers=6, stream_tokens=20, stream_delay_ms=15, plain_tokens=4, max_requests=50000,
                 max_secs=300.0, timeout=30.0, pause_ms=0):
        self.port = port
        self.workers = workers
        self.stream_tokens = stream_tokens
        self.stream_delay_ms = stream_delay_ms
        self.plain_tokens = plain_tokens
        self.max_requests = max_requests
        self.max_secs = max_secs
        self.timeout = timeout
        self.pause_ms = pause_ms
        self.results = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._started = None

    def _body(self, stream, n):
        body = {"model": "default", "stream": stream,
                "messages": [{"role": "user", "content": "load request %d" % n}],
                "sim_tokens": self.stream_tokens if stream else self.plain_tokens}
        if stream:
            body["sim_token_delay_ms"] = self.stream_delay_ms
        return json.dumps(body).encode()

    def _one(self, conn, stream, n):
        res = Result("stream" if stream else "plain", time.monotonic())
        try:
            conn.request("POST", "/v1/chat/completions", body=self._body(stream, n),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            res.first_byte = time.monotonic()
            data = resp.read()
            res.end = time.monotonic()
            if resp.status != 200:
                res.error = "HTTP %d: %r" % (resp.status, data[:200])
            else:
                res.error = (_check_stream if stream else _check_plain)(
                    data, self.stream_tokens if stream else self.plain_tokens)
        except Exception as e:  # noqa: BLE001 - every failure is recorded, none is fatal
            res.end = time.monotonic()
            res.error = "%s: %s" % (type(e).__name__, e)
        return res

    def _worker(self, i):
        stream = i % 2 == 1
        conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        n = 0
        try:
            while not self._stop.is_set() and time.monotonic() - self._started < self.max_secs:
                with self._lock:
                    if len(self.results) >= self.max_requests:
                        return
                res = self._one(conn, stream, i * 1000000 + n)
                n += 1
                if res.error is not None:
                    conn.close()  # a fresh connection for the next request
                with self._lock:
                    self.results.append(res)
                if self.pause_ms:
                    self._stop.wait(self.pause_ms / 1000.0)
        finally:
            conn.close()

    def start(self):
        self._started = time.monotonic()
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return [t for t in self._threads if t.is_alive()]

    def count(self):
        with self._lock:
            return len(self.results)

    def snapshot(self):
        with self._lock:
            return list(self.results)

    def failures(self):
        return [r for r in self.snapshot() if r.error is not None]


def percentile(values, q):
    """Nearest-rank percentile of a list of numbers (None when empty)."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-q * len(v) // 1)) - 1))
    return v[k]
