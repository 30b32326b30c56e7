"""tools/loadgen/test_loadgen.py - tests of the load generator's parts, standard library only:

  python3 -m unittest discover -s tools/loadgen -p 'test_*.py'

The client is tested against a small asyncio HTTP server in this file that answers with the
shapes the client must handle (SSE over chunked encoding with pauses between events, a
Content-Length JSON answer, an error status, a stream ended or cut before [DONE], a server that never
answers), so every measured time and every error class is checked against what was sent.
"""

import asyncio
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import client  # noqa: E402
import report  # noqa: E402
import workload  # noqa: E402


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(obj):
    return chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")


async def serve(reader, writer):
    """One behaviour per path; keep-alive until the client closes."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            path = head.split(b" ")[1].decode()
            if path == "/hang":
                await asyncio.sleep(30)
                return
            if path == "/error":
                writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")
                await writer.drain()
                continue
            if path == "/whole":
                body = json.dumps({"choices": [{"message": {"content": "a b"}}],
                                   "usage": {"prompt_tokens": 10, "completion_tokens": 2,
                                             "prompt_tokens_details": {"cached_tokens": 8}}}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" %
                             (len(body), body))
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(3):
                await asyncio.sleep(0.05)
                writer.write(sse({"sim_instance": "s1", "choices": [{"delta": {"content": "tok%d " % i}}]}))
                await writer.drain()
            if path == "/cut":
                writer.close()
                return
            if path == "/nodone":
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                continue
            writer.write(sse({"choices": [], "usage": {"prompt_tokens": 32, "completion_tokens": 3,
                                                       "prompt_tokens_details": {"cached_tokens": 16}}}))
            writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def exchange(paths, stream=True, timeout=5.0):
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = client.Pool("127.0.0.1", port, 4, 2.0)
    try:
        return [await client.post(pool, p, b"{}", stream, timeout) for p in paths]
    finally:
        pool.close()
        server.close()
        await server.wait_closed()


class ClientTest(unittest.TestCase):
    def test_stream_events_are_timed_as_they_arrive(self):
        (r,) = asyncio.run(exchange(["/stream"]))
        self.assertIsNone(r.error)
        self.assertEqual(len(r.token_times), 3)
        gaps = [b - a for a, b in zip(r.token_times, r.token_times[1:])]
        self.assertTrue(all(g >= 0.04 for g in gaps), gaps)
        self.assertGreaterEqual(r.token_times[0] - r.start, 0.04)
        self.assertEqual((r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.instance), (32, 3, 16, "s1"))
        self.assertEqual("".join(r.text), "tok0 tok1 tok2 ")

    def test_keep_alive_connection_is_reused_after_a_stream(self):
        results = asyncio.run(exchange(["/stream", "/whole", "/stream"]))
        self.assertEqual([r.error for r in results], [None, None, None])

    def test_whole_answer(self):
        (r,) = asyncio.run(exchange(["/whole"], stream=False))
        self.assertIsNone(r.error)
        self.assertEqual((r.cached_tokens, "".join(r.text), len(r.token_times)), (8, "a b", 1))

    def test_errors_are_classified(self):
        results = asyncio.run(exchange(["/error", "/nodone", "/cut", "/hang"], timeout=0.5))
        self.assertEqual([r.error for r in results], ["status 503", "incomplete", "closed", "timeout"])
        self.assertEqual(results[0].status, 503)

    def test_connect_refused(self):
        async def run():
            pool = client.Pool("127.0.0.1", 1, 1, 1.0)
            return await client.post(pool, "/", b"{}", True, 1.0)

        self.assertEqual(asyncio.run(run()).error, "connect")


class WorkloadTest(unittest.TestCase):
    def bodies(self, spec):
        out = []
        for job in workload.build(spec):
            gen = job()
            body = next(gen)
            while True:
                out.append(body)
                try:
                    body = gen.send("tok0 tok1")
                except StopIteration:
                    break
        return out

    def test_same_seed_same_requests(self):
        s = dict(kind="shared-prefix", groups=3, prompts_per_group=4, prefix_len=20, suffix_len=5)
        self.assertEqual(self.bodies(workload.Spec(seed=7, **s)), self.bodies(workload.Spec(seed=7, **s)))
        self.assertNotEqual(self.bodies(workload.Spec(seed=7, **s)), self.bodies(workload.Spec(seed=8, **s)))

    def test_shared_prefix_groups(self):
        spec = workload.Spec(kind="shared-prefix", groups=3, prompts_per_group=4, prefix_len=20, suffix_len=5)
        prompts = [b["messages"][-1]["content"].split() for b in self.bodies(spec)]
        self.assertEqual(len(prompts), 12)
        self.assertTrue(all(len(p) == 25 for p in prompts))
        prefixes = {}
        for p in prompts:
            prefixes.setdefault(tuple(p[:20]), []).append(p)
        self.assertEqual(sorted(len(v) for v in prefixes.values()), [4, 4, 4])

    def test_chat_history_grows_with_the_answers(self):
        spec = workload.Spec(kind="chat", users=2, rounds=3, system_len=4, turn_len=3)
        bodies = self.bodies(spec)
        self.assertEqual(len(bodies), 6)
        first, second, third = bodies[0]["messages"], bodies[1]["messages"], bodies[2]["messages"]
        self.assertEqual(len(first), 2)
        self.assertEqual(second[:2], first)
        self.assertEqual(second[2], {"role": "assistant", "content": "tok0 tok1"})
        self.assertEqual(third[:4], second)
        self.assertEqual(bodies[0]["messages"][0], bodies[3]["messages"][0])  # one shared system prompt

    def test_output_jitter_bounds(self):
        spec = workload.Spec(kind="unique", requests=200, prompt_len=4, output_tokens=32, output_jitter=0.5)
        lengths = [b["sim_tokens"] for b in self.bodies(spec)]
        self.assertTrue(all(16 <= n <= 48 for n in lengths), lengths)
        self.assertGreater(len(set(lengths)), 20)
        self.assertEqual([b["max_tokens"] for b in self.bodies(spec)], lengths)
        exact = workload.Spec(kind="unique", requests=20, prompt_len=4, output_tokens=32)
        self.assertEqual({b["sim_tokens"] for b in self.bodies(exact)}, {32})

    def test_unique_prompts_share_no_first_words(self):
        spec = workload.Spec(kind="unique", requests=50, prompt_len=16)
        firsts = [tuple(b["messages"][-1]["content"].split()[:4]) for b in self.bodies(spec)]
        self.assertEqual(len(set(firsts)), 50)


class ReportTest(unittest.TestCase):
    def test_percentile(self):
        self.assertEqual(report.percentile([1, 2, 3, 4], 50), 2.5)
        self.assertEqual(report.percentile([5], 99), 5)
        self.assertIsNone(report.percentile([], 50))

    def test_fleet_hit_rate_from_counter_deltas(self):
        c = report.HIT_COUNTERS
        before = {"a": {c[0]: 100, c[1]: 10}, "b": {c[0]: 0, c[1]: 0}, "down": None}
        after = {"a": {c[0]: 300, c[1]: 110}, "b": {c[0]: 100, c[1]: 50}, "down": None}
        self.assertEqual(report.fleet_hit_rate(before, after),
                         {"hit_tokens": 150, "prompt_tokens": 300, "rate": 0.5})

    def test_summary(self):
        ok = client.Result(0.0)
        ok.end, ok.token_times, ok.completion_tokens, ok.prompt_tokens, ok.cached_tokens = 1.0, [0.2, 0.5, 0.9], 3, 10, 5
        bad = client.Result(0.5)
        bad.end, bad.error = 0.6, "timeout"
        s = report.summarize([ok, bad], (0.0, 2.0))
        self.assertEqual((s["completed"], s["errors"], s["output_tokens"]), (1, {"timeout": 1}, 3))
        self.assertAlmostEqual(s["ttft_s"]["p50"], 0.2)
        self.assertAlmostEqual(s["itl_s"]["max"], 0.4)
        self.assertAlmostEqual(s["throughput_rps"], 0.5)
        self.assertAlmostEqual(s["usage_hit_rate"], 0.5)


if __name__ == "__main__":
    unittest.main()
