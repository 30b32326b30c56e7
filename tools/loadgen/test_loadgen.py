"""tools/loadgen/test_loadgen.py - tests of the load generator's parts, standard library only:

  python3 -m unittest discover -s tools/loadgen -p 'test_*.py'

The client is tested against a small asyncio HTTP server in this file that answers with the
shapes the client must handle (SSE over chunked encoding with pauses between events, a
Content-Length JSON answer, an error status, a stream ended or cut before [DONE], a server that never
answers), so every measured time and every error class is checked against what was sent.
"""

import asyncio
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import client  # noqa: E402
import loadgen  # noqa: E402
import report  # noqa: E402
import workload  # noqa: E402


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(obj):
    return chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")


class Gate:
    """While `opened` is an unset asyncio.Event, the streamed answers of serve() wait for it."""
    opened = None


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
            if Gate.opened is not None:
                await Gate.opened.wait()
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

    def test_hot_prefix_half_in_one_group_with_long_suffixes(self):
        spec = workload.Spec(kind="hot-prefix", groups=3, prompts_per_group=4, prefix_len=20, suffix_len=5,
                             hot_prefix_len=30, hot_suffix_len=12)
        jobs = workload.build(spec)
        self.assertEqual(len(jobs), 24)
        self.assertEqual(sorted({j.group for j in jobs}), [0, 1, 2, 3])
        by_group = {}
        for job in jobs:
            words = next(job())["messages"][-1]["content"].split()
            by_group.setdefault(job.group, []).append(words)
        hot = by_group.pop(0)
        self.assertEqual(len(hot), 12)  # half of the requests
        self.assertTrue(all(len(p) == 42 and p[:30] == hot[0][:30] for p in hot))
        self.assertEqual(len({tuple(p[30:]) for p in hot}), 12)  # every suffix its own
        for cold in by_group.values():
            self.assertEqual(len(cold), 4)
            self.assertTrue(all(len(p) == 25 and p[:20] == cold[0][:20] for p in cold))
        order = [j.group for j in jobs]
        self.assertNotEqual(order, sorted(order))  # shuffled: the hot group is not sent in one burst
        self.assertEqual(self.bodies(spec), self.bodies(workload.Spec(**dict(vars(spec)))))
        self.assertNotEqual(self.bodies(spec), self.bodies(workload.Spec(**dict(vars(spec), seed=2))))
        self.assertIn("hot group 12 prompts, prefix 30 + suffix 12", workload.describe(spec))

    def test_ideal_hit_counts_full_blocks_of_the_shared_prefix_but_never_the_last_token(self):
        # 2 groups x 3 prompts of 32 + 5 words: the 2nd and 3rd prompt of each hit both prefix blocks
        spec = workload.Spec(kind="shared-prefix", groups=2, prompts_per_group=3, prefix_len=32, suffix_len=5)
        self.assertAlmostEqual(workload.ideal_hit(spec), 4 * 32 / (6 * 37))
        # a prefix of 20 words fills one block; the block across the prefix's end is never shared
        spec.prefix_len = 20
        self.assertAlmostEqual(workload.ideal_hit(spec), 4 * 16 / (6 * 25))
        # the same 32-word prompt again: its last token is computed, so only the first block hits
        spec.prefix_len, spec.suffix_len = 32, 0
        self.assertAlmostEqual(workload.ideal_hit(spec), 4 * 16 / (6 * 32))
        self.assertEqual(workload.ideal_hit(workload.Spec(kind="unique", requests=10, prompt_len=40)), 0)
        self.assertIsNone(workload.ideal_hit(workload.Spec(kind="chat")))

    def test_unique_prompts_share_no_first_words(self):
        spec = workload.Spec(kind="unique", requests=50, prompt_len=16)
        firsts = [tuple(b["messages"][-1]["content"].split()[:4]) for b in self.bodies(spec)]
        self.assertEqual(len(set(firsts)), 50)


async def open_when(runner, ready, bound_s=10.0):
    """Open the gate once ready(runner) holds (at most bound_s later: a test then fails on its
    figures instead of hanging)."""
    deadline = asyncio.get_running_loop().time() + bound_s
    while not ready(runner) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.001)
    Gate.opened.set()


async def run_loadgen(argv, servers=1, hold_until=None):
    """Run loadgen's Runner against `servers` test servers; returns the Runner. With hold_until,
    every streamed answer waits until hold_until(runner) holds."""
    handlers = []

    def handle(reader, writer):  # kept, so the connections' ends are awaited before the loop closes
        handlers.append(asyncio.ensure_future(serve(reader, writer)))

    started = [await asyncio.start_server(handle, "127.0.0.1", 0) for _ in range(servers)]
    urls = ",".join("http://127.0.0.1:%d" % s.sockets[0].getsockname()[1] for s in started)
    try:
        args = loadgen.parse_args(["--url", urls] + argv)
        runner = loadgen.Runner(args, workload.build(loadgen.spec_of(args)))
        opener = None
        if hold_until is not None:
            Gate.opened = asyncio.Event()
            opener = asyncio.ensure_future(open_when(runner, hold_until))
        await runner.run()
        if opener is not None:
            await opener
        if handlers:
            await asyncio.wait(handlers, timeout=5)  # the closed pools' connections: their handlers see EOF
        return runner
    finally:
        Gate.opened = None
        for s in started:
            s.close()
            await s.wait_closed()


class LoadTest(unittest.TestCase):
    UNIQUE = ["--workload", "unique", "--requests", "10", "--prompt-len", "4"]

    def test_open_loop_launches_without_waiting_for_answers(self):
        runner = asyncio.run(run_loadgen(self.UNIQUE + ["--arrival", "poisson", "--rate", "1000"]))
        results = [r for _, _, _, r in runner.results]
        self.assertEqual([r.error for r in results], [None] * 10)
        # each answer takes >= 0.15 s; arrivals 1 ms apart on average: all sent before the first ended
        self.assertLess(max(r.start for r in results), min(r.end for r in results))

    def test_open_loop_arrivals_follow_the_seed(self):
        def starts(seed):
            runner = asyncio.run(run_loadgen(self.UNIQUE + ["--rate", "200", "--seed", seed]))
            return sorted(r.start - runner.t0 for _, _, _, r in runner.results)

        a, b = starts("3"), starts("4")
        self.assertLess(a[-1], 1.0)  # 10 arrivals at 200/s: about 50 ms (the schedule, not the answers)
        self.assertNotEqual([round(x, 2) for x in a], [round(x, 2) for x in b])

    def test_open_loop_drops_arrivals_beyond_max_outstanding(self):
        # every arrival is overdue at once (a stalled loop's case: no await between launches, so a
        # job must count as outstanding when launched), and answers are held until all 10 jobs
        # have arrived (in flight or dropped), so no answer ends before a late arrival
        arrived = lambda r: r.outstanding + len(r.results) >= 10  # noqa: E731
        runner = asyncio.run(run_loadgen(self.UNIQUE + ["--rate", "1e9", "--max-outstanding", "3"],
                                         hold_until=arrived))
        errors = sorted(str(r.error) for _, _, _, r in runner.results)
        self.assertEqual(errors, ["None"] * 3 + ["dropped"] * 7)
        s = report.summarize([r for _, _, _, r in runner.results], (0, 1))
        self.assertEqual((s["completed"], s["errors"]), (3, {"dropped": 7}))

    def test_open_loop_chat_rounds_wait_for_the_previous_answer(self):
        runner = asyncio.run(run_loadgen(["--workload", "chat", "--users", "3", "--rounds", "2", "--system-len", "2",
                                          "--turn-len", "2", "--rate", "1000"]))
        self.assertEqual(len(runner.results), 6)
        by_job = {}
        for job, rnd, _, r in runner.results:
            by_job.setdefault(job, {})[rnd] = r
        for rounds in by_job.values():
            self.assertGreaterEqual(rounds[1].start, rounds[0].end)
        firsts = [rounds[0] for rounds in by_job.values()]
        self.assertLess(max(r.start for r in firsts), min(r.end for r in firsts))  # sessions overlap

    def test_closed_loop_keeps_concurrency(self):
        runner = asyncio.run(run_loadgen(self.UNIQUE + ["--concurrency", "2"]))
        results = sorted((r for _, _, _, r in runner.results), key=lambda r: r.start)
        self.assertEqual(len(results), 10)
        self.assertGreaterEqual(results[2].start, min(results[0].end, results[1].end))

    def test_several_urls_alternate_and_the_trace_names_group_and_target(self):
        runner = asyncio.run(run_loadgen(self.UNIQUE + ["--concurrency", "1"], servers=2))
        self.assertEqual([t for _, _, t, _ in runner.results], [0, 1] * 5)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "trace.csv")
            loadgen.write_trace(path, runner)
            with open(path) as f:
                rows = list(csv.DictReader(f))
        self.assertEqual(sorted(int(r["group"]) for r in rows), list(range(10)))
        self.assertEqual(len({r["target"] for r in rows}), 2)
        self.assertEqual({r["instance"] for r in rows}, {"s1"})

    def test_random_split_uses_every_url(self):
        runner = asyncio.run(run_loadgen(self.UNIQUE + ["--split", "random"], servers=2))
        targets = [t for _, _, t, _ in runner.results]
        self.assertEqual(sorted(set(targets)), [0, 1])

    def test_arrival_flags(self):
        for argv in (["--arrival", "poisson"], ["--arrival", "closed", "--rate", "5"], ["--rate", "5",
                                                                                       "--max-outstanding", "0"]):
            with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
                loadgen.parse_args(["--url", "http://127.0.0.1:1"] + argv)
        a = loadgen.parse_args(["--url", "http://127.0.0.1:1,http://127.0.0.1:2", "--rate", "5"])
        self.assertEqual((a.arrival, a.targets), ("poisson", [("127.0.0.1", 1), ("127.0.0.1", 2)]))
        self.assertEqual(loadgen.parse_args(["--url", "http://127.0.0.1:1"]).concurrency, 8)


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

    def test_load_spread_counts_unused_instances(self):
        self.assertEqual(report.load_spread({"a": 3, "b": 1}, 4), (3.0, 2))
        self.assertEqual(report.load_spread({"a": 3, "b": 1}), (1.5, 2))
        self.assertEqual(report.load_spread({}, 4), (None, 0))
        ok = client.Result(0.0)
        ok.end, ok.instance = 1.0, "x"
        s = report.summarize([ok], (0.0, 1.0), 2)
        self.assertEqual((s["load_spread"], s["instances_used"]), (2.0, 1))


if __name__ == "__main__":
    unittest.main()
