#!/usr/bin/env python3
"""tools/loadgen/loadgen.py - fd-router's load generator (Python 3 standard library only).

Replays a generated workload (workload.py) against an OpenAI-compatible endpoint - fd-router, an
nginx proxy or an fd-sim instance directly, or several of them (--url a,b: each request goes to one,
alternately or at random, as a load balancer in front of router replicas would send it) - either
open-loop (--arrival poisson --rate R: jobs arrive at exponential intervals drawn from the seed, on
a schedule that does not wait for answers; at most --max-outstanding requests in flight, an
arrival beyond that is dropped and counted as an error, as a client that gives up would be; a chat
job is a session whose next round starts when its previous answer ended) or closed-loop
(--concurrency users, each sending its next request when the previous one ended). Answers are
streamed (client.py) and every SSE event is timed, which gives time to first token, inter-token
latency and end-to-end latency per request. report.py turns them into percentiles, throughput,
errors, the load spread over the instances and the fleet's prefix-cache hit rate (read from the
instances' /metrics before and after the run).

The bench/ scripts drive it with --json and read the summary from there; a person reads the table.

Examples:
  loadgen.py --url http://127.0.0.1:9000 --workload shared-prefix --groups 8 --prompts-per-group 16 \\
             --arrival poisson --rate 20 --discover
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
    p.add_argument("--url", required=True,
                   help="base URL of the target, http://127.0.0.1:PORT, or several, comma-separated")
    p.add_argument("--split", choices=("alternate", "random"), default="alternate",
                   help="with several --url: each request to the next one in turn, or to one drawn from the seed")
    p.add_argument("--api", choices=("chat", "completions"), default="chat",
                   help="POST /v1/chat/completions (messages) or /v1/completions (prompt)")
    p.add_argument("--no-stream", dest="stream", action="store_false", help="ask for whole answers, not SSE")
    w = p.add_argument_group("workload")
    w.add_argument("--workload", choices=("shared-prefix", "hot-prefix", "chat", "unique"), default="shared-prefix")
    w.add_argument("--seed", type=int, default=1, help="seed of the prompts, their order and the arrivals")
    w.add_argument("--groups", type=int, default=8, help="shared-prefix: prefix groups; hot-prefix: cold groups")
    w.add_argument("--prompts-per-group", type=int, default=16,
                   help="shared-prefix: prompts per group; hot-prefix: per cold group (the hot group has as "
                        "many prompts as all cold groups together)")
    w.add_argument("--prefix-len", type=int, default=512, help="shared-prefix (hot-prefix: cold groups): words of "
                                                               "the shared prefix")
    w.add_argument("--suffix-len", type=int, default=32, help="shared-prefix (hot-prefix: cold groups): words of "
                                                              "each prompt's own suffix")
    w.add_argument("--hot-prefix-len", type=int, default=512, help="hot-prefix: words of the hot group's prefix")
    w.add_argument("--hot-suffix-len", type=int, default=256, help="hot-prefix: words of each hot prompt's own suffix")
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
    m.add_argument("--arrival", choices=("closed", "poisson"),
                   help="closed loop (--concurrency) or open loop (--rate); default: poisson with --rate")
    g.add_argument("--rate", type=float, help="open loop: Poisson arrivals per second (jobs: a chat session is one)")
    g.add_argument("--concurrency", type=int, help="closed loop: concurrent users (default 8 without --rate)")
    m.add_argument("--max-outstanding", type=int, default=1024,
                   help="open loop: requests in flight at most; a job arriving beyond it is dropped (one error)")
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
    if args.arrival is None:
        args.arrival = "poisson" if args.rate is not None else "closed"
    if args.arrival == "poisson" and args.rate is None:
        p.error("--arrival poisson needs --rate")
    if args.arrival == "closed" and args.rate is not None:
        p.error("--arrival closed takes --concurrency, not --rate")
    if args.arrival == "closed" and args.concurrency is None:
        args.concurrency = 8
    if (args.rate is not None and args.rate <= 0) or (args.concurrency is not None and args.concurrency < 1):
        p.error("--rate must be > 0 and --concurrency >= 1")
    if args.max_outstanding < 1:
        p.error("--max-outstanding must be >= 1")
    args.targets = []
    for url in args.url.split(","):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            p.error("--url must be http://HOST:PORT[,http://HOST:PORT...]")
        args.targets.append((u.hostname, u.port or 80))
    return args


def spec_of(args):
    return workload.Spec(kind=args.workload, seed=args.seed, groups=args.groups,
                         prompts_per_group=args.prompts_per_group, prefix_len=args.prefix_len,
                         suffix_len=args.suffix_len, hot_prefix_len=args.hot_prefix_len,
                         hot_suffix_len=args.hot_suffix_len, users=args.users, rounds=args.rounds,
                         system_len=args.system_len, turn_len=args.turn_len, requests=args.requests,
                         prompt_len=args.prompt_len, output_tokens=args.output_tokens,
                         output_jitter=args.output_jitter, api=args.api,
                         stream=args.stream)


class Runner:
    def __init__(self, args, jobs):
        self.args = args
        self.jobs = jobs
        self.path = "/v1/chat/completions" if args.api == "chat" else "/v1/completions"
        self.results = []  # (job index, round, target index, Result)
        self.pools = []
        self.t0 = None
        self.sent = 0
        self.split_rng = random.Random(args.seed * 104729 + 3)  # apart from the prompts' and arrivals' draws
        self.outstanding = 0

    def target(self):
        """Index of the target the next request goes to."""
        if len(self.pools) == 1:
            return 0
        if self.args.split == "random":
            return self.split_rng.randrange(len(self.pools))
        self.sent += 1
        return (self.sent - 1) % len(self.pools)

    async def run_job(self, index, job, counted=False):
        """counted: the open loop counted the first round as outstanding when it launched the job
        (the task starts later, and arrivals due at once would otherwise all pass its check)."""
        gen = job()
        body = next(gen)
        rnd = 0
        while True:
            t = self.target()
            self.outstanding += not counted
            counted = False
            try:
                res = await client.post(self.pools[t], self.path, json.dumps(body).encode(), self.args.stream,
                                        self.args.timeout)
            finally:
                self.outstanding -= 1
            self.results.append((index, rnd, t, res))
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
            if self.outstanding >= self.args.max_outstanding:
                dropped = client.Result(time.monotonic())  # the client gives up on this job at once
                dropped.end, dropped.error = dropped.start, "dropped"
                self.results.append((i, 0, None, dropped))
                continue
            self.outstanding += 1
            tasks.append(asyncio.ensure_future(self.run_job(i, job, counted=True)))
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
        self.pools = [client.Pool(host, port, self.args.max_conns, self.args.connect_timeout)
                      for host, port in self.args.targets]
        self.t0 = time.monotonic()
        try:
            if self.args.arrival == "poisson":
                await self.open_loop()
            else:
                await self.closed_loop()
        finally:
            for pool in self.pools:
                pool.close()


def write_trace(path, runner):
    with open(path, "w") as f:
        f.write("job,round,start_s,ttft_s,e2e_s,status,error,instance,cached_tokens,group,target\n")
        for index, rnd, t, r in sorted(runner.results, key=lambda x: x[3].start):
            ttft = "%.6f" % (r.token_times[0] - r.start) if r.token_times and r.error is None else ""
            f.write("%d,%d,%.6f,%s,%.6f,%d,%s,%s,%s,%s,%s\n" %
                    (index, rnd, r.start - runner.t0, ttft, r.end - r.start, r.status, r.error or "",
                     r.instance or "", "" if r.cached_tokens is None else r.cached_tokens,
                     runner.jobs[index].group, "" if t is None else target_url(runner.args, t)))


def target_url(args, t):
    return "http://%s:%d" % args.targets[t]


def main(argv=None):
    args = parse_args(argv)
    spec = spec_of(args)
    jobs = workload.build(spec)
    instances = [u for u in args.instances.split(",") if u]
    if args.discover:
        instances += report.discover("http://%s:%d" % args.targets[0])
    before = report.scrape(instances)
    runner = Runner(args, jobs)
    asyncio.run(runner.run())
    after = report.scrape(instances)
    results = [r for _, _, _, r in runner.results]
    wall = (min((r.start for r in results), default=0), max((r.end for r in results), default=0))
    summary = report.summarize(results, wall, len(instances))
    summary["fleet_hit"] = report.fleet_hit_rate(before, after) if instances else None
    load = "Poisson arrivals at %g/s (open loop, at most %d outstanding)" % (args.rate, args.max_outstanding) \
        if args.arrival == "poisson" else "concurrency %d (closed loop)" % args.concurrency
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
