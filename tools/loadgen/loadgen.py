#!/usr/bin/env python3
"""tools/loadgen/loadgen.py - fd-router's load generator (Python 3 standard library only).

Replays a generated workload (workload.py) against an OpenAI-compatible endpoint - fd-router, an
nginx proxy or an fd-sim instance directly - either open-loop (Poisson arrivals at --rate, on a
schedule that does not wait for answers) or closed-loop (--concurrency users, each sending its
next request when the previous one ended). Answers are streamed (client.py) and every SSE event is
timed, which gives time to first token, inter-token latency and end-to-end latency per request.
report.py turns them into percentiles, throughput, errors and the fleet's prefix-cache hit rate
(read from the instances' /metrics before and after the run).

The bench/ scripts drive it with --json and read the summary from there; a person reads the table.

Examples:
  loadgen.py --url http://127.0.0.1:9000 --workload shared-prefix --groups 8 --prompts-per-group 16 \\
             --rate 20 --discover
  loadgen.py --url http://127.0.0.1:9000 --workload chat --users 32 --rounds 4 --concurrency 8 --json out.json
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import client  # noqa: E402
import report  # noqa: E402
import workload  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description="Load generator for OpenAI-compatible routers and fd-sim fleets.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--url", required=True, help="base URL of the target, http://127.0.0.1:PORT")
    p.add_argument("--api", choices=("chat", "completions"), default="chat",
                   help="POST /v1/chat/completions (messages) or /v1/completions (prompt)")
    p.add_argument("--no-stream", dest="stream", action="store_false", help="ask for whole answers, not SSE")
    w = p.add_argument_group("workload")
    w.add_argument("--workload", choices=("shared-prefix", "chat", "unique"), default="shared-prefix")
    w.add_argument("--seed", type=int, default=1, help="seed of the prompts, their order and the arrivals")
    w.add_argument("--groups", type=int, default=8, help="shared-prefix: prefix groups")
    w.add_argument("--prompts-per-group", type=int, default=16, help="shared-prefix: prompts per group")
    w.add_argument("--prefix-len", type=int, default=512, help="shared-prefix: words of the shared prefix")
    w.add_argument("--suffix-len", type=int, default=32, help="shared-prefix: words of each prompt's own suffix")
    w.add_argument("--users", type=int, default=16, help="chat: users (sessions)")
    w.add_argument("--rounds", type=int, default=4, help="chat: rounds per user; history grows each round")
    w.add_argument("--system-len", type=int, default=64, help="chat: words of the system prompt all users share")
    w.add_argument("--turn-len", type=int, default=64, help="chat: words of each user message")
    w.add_argument("--think-ms", type=float, default=0, help="chat: pause between a user's rounds")
    w.add_argument("--requests", type=int, default=128, help="unique: prompts")
    w.add_argument("--prompt-len", type=int, default=256, help="unique: words per prompt")
    w.add_argument("--output-tokens", type=int, default=16,
                   help="tokens per answer (sent as max_tokens and fd-sim's sim_tokens)")
    w.add_argument("--output-jitter", type=float, default=0,
                   help="draw each answer's length uniformly within +- this fraction of --output-tokens "
                        "(answers of one length end together and make closed-loop users move in lockstep)")
    m = p.add_argument_group("load")
    g = m.add_mutually_exclusive_group()
    g.add_argument("--rate", type=float, help="open loop: Poisson arrivals per second (jobs: a chat session is one)")
    g.add_argument("--concurrency", type=int, help="closed loop: concurrent users (default 8 without --rate)")
    m.add_argument("--duration", type=float, default=0, help="stop starting jobs after this many seconds (0: all)")
    m.add_argument("--timeout", type=float, default=120, help="seconds one request may take")
    m.add_argument("--connect-timeout", type=float, default=5)
    m.add_argument("--max-conns", type=int, default=2048, help="connections open at once")
    o = p.add_argument_group("instances and output")
    o.add_argument("--instances", default="", help="comma-separated base URLs whose /metrics give the hit rate")
    o.add_argument("--discover", action="store_true", help="take the instances from the target's GET /registered")
    o.add_argument("--json", help="write the summary (and the parameters) to this file")
    o.add_argument("--trace", help="write one CSV line per request (start, TTFT, end-to-end, status, instance); "
                                   "start_s counts from the JSON's t0_monotonic (CLOCK_MONOTONIC, shared by processes)")
    o.add_argument("--label", default="", help="title of the table and the JSON")
    o.add_argument("--quiet", action="store_true", help="no table on stdout")
    args = p.parse_args(argv)
    if args.rate is None and args.concurrency is None:
        args.concurrency = 8
    if (args.rate is not None and args.rate <= 0) or (args.concurrency is not None and args.concurrency < 1):
        p.error("--rate must be > 0 and --concurrency >= 1")
    u = urllib.parse.urlsplit(args.url)
    if u.scheme != "http" or not u.hostname:
        p.error("--url must be http://HOST:PORT")
    args.host, args.port = u.hostname, u.port or 80
    return args


def spec_of(args):
    return workload.Spec(kind=args.workload, seed=args.seed, groups=args.groups,
                         prompts_per_group=args.prompts_per_group, prefix_len=args.prefix_len,
                         suffix_len=args.suffix_len, users=args.users, rounds=args.rounds,
                         system_len=args.system_len, turn_len=args.turn_len, requests=args.requests,
                         prompt_len=args.prompt_len, output_tokens=args.output_tokens,
                         output_jitter=args.output_jitter, api=args.api,
                         stream=args.stream)


class Runner:
    def __init__(self, args, jobs):
        self.args = args
        self.jobs = jobs
        self.path = "/v1/chat/completions" if args.api == "chat" else "/v1/completions"
        self.results = []  # (job index, round, Result)
        self.pool = None
        self.t0 = None

    async def run_job(self, index, job):
        gen = job()
        body = next(gen)
        rnd = 0
        while True:
            res = await client.post(self.pool, self.path, json.dumps(body).encode(), self.args.stream,
                                    self.args.timeout)
            self.results.append((index, rnd, res))
            if res.error is not None:
                return  # a session whose round failed has no answer to carry on with
            try:
                body = gen.send("".join(res.text))
            except StopIteration:
                return
            rnd += 1
            if self.args.think_ms > 0:
                await asyncio.sleep(self.args.think_ms / 1000)

    def started_too_late(self):
        return self.args.duration > 0 and time.monotonic() - self.t0 >= self.args.duration

    async def open_loop(self):
        rng = random.Random(self.args.seed * 7919 + 1)  # arrivals apart from the prompts' draws
        tasks = []
        due = self.t0
        for i, job in enumerate(self.jobs):
            due += rng.expovariate(self.args.rate)
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.started_too_late():
                break
            tasks.append(asyncio.ensure_future(self.run_job(i, job)))
        await asyncio.gather(*tasks)

    async def closed_loop(self):
        queue = list(enumerate(self.jobs))
        queue.reverse()

        async def user():
            while queue and not self.started_too_late():
                i, job = queue.pop()
                await self.run_job(i, job)

        await asyncio.gather(*(user() for _ in range(self.args.concurrency)))

    async def run(self):
        self.pool = client.Pool(self.args.host, self.args.port, self.args.max_conns, self.args.connect_timeout)
        self.t0 = time.monotonic()
        try:
            if self.args.rate is not None:
                await self.open_loop()
            else:
                await self.closed_loop()
        finally:
            self.pool.close()


def write_trace(path, runner):
    with open(path, "w") as f:
        f.write("job,round,start_s,ttft_s,e2e_s,status,error,instance,cached_tokens\n")
        for index, rnd, r in sorted(runner.results, key=lambda x: x[2].start):
            ttft = "%.6f" % (r.token_times[0] - r.start) if r.token_times and r.error is None else ""
            f.write("%d,%d,%.6f,%s,%.6f,%d,%s,%s,%s\n" %
                    (index, rnd, r.start - runner.t0, ttft, r.end - r.start, r.status, r.error or "",
                     r.instance or "", "" if r.cached_tokens is None else r.cached_tokens))


def main(argv=None):
    args = parse_args(argv)
    spec = spec_of(args)
    jobs = workload.build(spec)
    instances = [u for u in args.instances.split(",") if u]
    if args.discover:
        instances += report.discover(args.url)
    before = report.scrape(instances)
    runner = Runner(args, jobs)
    asyncio.run(runner.run())
    after = report.scrape(instances)
    results = [r for _, _, r in runner.results]
    wall = (min((r.start for r in results), default=0), max((r.end for r in results), default=0))
    summary = report.summarize(results, wall)
    summary["fleet_hit"] = report.fleet_hit_rate(before, after) if instances else None
    load = "rate %g/s (open loop)" % args.rate if args.rate is not None else \
        "concurrency %d (closed loop)" % args.concurrency
    title = "%s%s -> %s, %s" % (args.label + ": " if args.label else "", workload.describe(spec), args.url, load)
    if not args.quiet:
        print(report.table(summary, title))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"label": args.label, "title": title, "params": vars(args), "summary": summary,
                       "t0_monotonic": runner.t0}, f, indent=1)
    if args.trace:
        write_trace(args.trace, runner)
    return 0 if summary["completed"] else 1


if __name__ == "__main__":
    sys.exit(main())
