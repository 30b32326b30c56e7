"""tools/loadgen/client.py - the load generator's HTTP/1.1 client: one POST per call over a
pooled keep-alive connection, the answer streamed and every server-sent event timed on arrival.

asyncio streams rather than http.client so that thousands of requests can be in flight from one
thread and the time of each SSE event is taken when its bytes arrive, not when a buffered reader
hands them over. It speaks just what OpenAI-compatible servers (fd-sim, fd-router, nginx) send:
Content-Length or chunked bodies, keep-alive or close. Every read has a deadline and every buffer
a bound, so a stuck or hostile server costs one failed request, never a hung run.
"""

import asyncio
import json
import time

MAX_HEAD = 64 * 1024  # bytes of status line + headers
MAX_BODY = 64 * 1024 * 1024  # bytes of one answer


class RequestError(Exception):
    """A request that did not complete; kind is the error class counted in the report."""

    def __init__(self, kind, detail=""):
        super().__init__("%s: %s" % (kind, detail) if detail else kind)
        self.kind = kind


class Result:
    """What one request measured. Times are time.monotonic() seconds; tokens hold arrival times."""

    __slots__ = ("start", "end", "status", "error", "token_times", "completion_tokens", "prompt_tokens",
                 "cached_tokens", "instance", "text")

    def __init__(self, start):
        self.start = start
        self.end = None
        self.status = 0
        self.error = None
        self.token_times = []
        self.completion_tokens = None
        self.prompt_tokens = None
        self.cached_tokens = None
        self.instance = None
        self.text = []


class _Conn:
    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    def close(self):
        try:
            self.writer.close()
        except Exception:
            pass


class Pool:
    """Idle keep-alive connections to one host:port; at most `limit` open at once."""

    def __init__(self, host, port, limit, connect_timeout):
        self.host = host
        self.port = port
        self.idle = []
        self.sem = asyncio.Semaphore(limit)
        self.connect_timeout = connect_timeout

    async def acquire(self):
        await self.sem.acquire()
        while self.idle:
            conn = self.idle.pop()
            if not conn.reader.at_eof():
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port, limit=MAX_HEAD),
                                                    self.connect_timeout)
        except asyncio.TimeoutError:
            self.sem.release()
            raise RequestError("connect", "timeout")
        except OSError as e:
            self.sem.release()
            raise RequestError("connect", e.strerror or str(e))
        return _Conn(reader, writer)

    def release(self, conn, reusable):
        if reusable:
            self.idle.append(conn)
        else:
            conn.close()
        self.sem.release()

    def close(self):
        for conn in self.idle:
            conn.close()
        self.idle = []


async def _read_head(reader):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        raise RequestError("closed", "before the response head")
    except asyncio.LimitOverrunError:
        raise RequestError("protocol", "response head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise RequestError("protocol", "bad status line %r" % lines[0][:80])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    keep = parts[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return int(parts[1]), headers, keep


async def _body_pieces(reader, headers):
    """Yield the body's bytes as they arrive (chunked, Content-Length or until close)."""
    total = 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected: the empty line
                return
            total += size
            if total > MAX_BODY:
                raise RequestError("protocol", "body too large")
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    elif "content-length" in headers:
        left = int(headers["content-length"])
        if left > MAX_BODY:
            raise RequestError("protocol", "body too large")
        while left > 0:
            piece = await reader.read(min(left, 65536))
            if not piece:
                raise RequestError("closed", "inside the body")
            left -= len(piece)
            yield piece
    else:
        while True:
            piece = await reader.read(65536)
            if not piece:
                return
            total += len(piece)
            if total > MAX_BODY:
                raise RequestError("protocol", "body too large")
            yield piece


def _take_usage(res, obj):
    usage = obj.get("usage")
    if isinstance(usage, dict):
        res.prompt_tokens = usage.get("prompt_tokens")
        res.completion_tokens = usage.get("completion_tokens")
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            res.cached_tokens = details.get("cached_tokens")
    if res.instance is None and isinstance(obj.get("sim_instance"), str):
        res.instance = obj["sim_instance"]


def _sse_event(res, data, now):
    """One `data:` payload of the stream; returns True at [DONE]."""
    if data == b"[DONE]":
        return True
    try:
        obj = json.loads(data)
    except ValueError:
        raise RequestError("protocol", "bad SSE JSON")
    if not isinstance(obj, dict):
        raise RequestError("protocol", "bad SSE JSON")
    _take_usage(res, obj)
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") or {}
        piece = delta.get("content") or choice.get("text")
        if piece:
            res.token_times.append(now)
            res.text.append(piece)
    return False


async def _read_stream(reader, headers, res):
    buf = b""
    done = False
    async for piece in _body_pieces(reader, headers):
        now = time.monotonic()
        buf += piece
        while True:
            cut = buf.find(b"\n\n")
            if cut < 0:
                break
            event, buf = buf[:cut], buf[cut + 2:]
            for line in event.replace(b"\r", b"").split(b"\n"):
                if line.startswith(b"data:") and _sse_event(res, line[5:].strip(), now):
                    done = True
        if len(buf) > MAX_HEAD:
            raise RequestError("protocol", "SSE event too large")
    if not done:
        raise RequestError("incomplete", "stream ended without [DONE]")


async def _read_whole(reader, headers, res):
    chunks = []
    async for piece in _body_pieces(reader, headers):
        chunks.append(piece)
    body = b"".join(chunks)
    res.token_times.append(time.monotonic())
    try:
        obj = json.loads(body)
    except ValueError:
        raise RequestError("protocol", "bad JSON body")
    if isinstance(obj, dict):
        _take_usage(res, obj)
        for choice in obj.get("choices") or ():
            msg = choice.get("message") or {}
            piece = msg.get("content") or choice.get("text")
            if piece:
                res.text.append(piece)


async def _exchange(conn, request, stream, res):
    conn.writer.write(request)
    await conn.writer.drain()
    status, headers, keep = await _read_head(conn.reader)
    res.status = status
    if status != 200:
        async for _ in _body_pieces(conn.reader, headers):
            pass
        raise RequestError("status %d" % status)
    if stream and "text/event-stream" in headers.get("content-type", ""):
        await _read_stream(conn.reader, headers, res)
    else:
        await _read_whole(conn.reader, headers, res)
    return keep and ("content-length" in headers or "chunked" in headers.get("transfer-encoding", ""))


async def post(pool, path, body, stream, timeout):
    """POST body (bytes) to path; returns a Result (error set when it failed)."""
    request = ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
               "Accept: text/event-stream, application/json\r\nContent-Length: %d\r\n\r\n" %
               (path, pool.host, pool.port, len(body))).encode() + body
    res = Result(time.monotonic())
    try:
        conn = await pool.acquire()
    except RequestError as e:
        res.error = e.kind
        res.end = time.monotonic()
        return res
    reusable = False
    try:
        reusable = await asyncio.wait_for(_exchange(conn, request, stream, res), timeout)
    except asyncio.TimeoutError:
        res.error = "timeout"
    except RequestError as e:
        res.error = e.kind
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        res.error = "closed"
    except (ValueError, asyncio.LimitOverrunError):
        res.error = "protocol"
    finally:
        res.end = time.monotonic()
        pool.release(conn, reusable and res.error is None)
    return res
