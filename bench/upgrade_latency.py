#!/usr/bin/env python3
"""bench/upgrade_latency.py - what a hot upgrade costs the traffic: the latency of a steady load
of streaming and non-streaming chat requests while the data plane is upgraded again and again,
next to the same load without upgrades.

It starts fd-router (one CP, one DP) on a free port of 127.0.0.1 with two fd-sim instances, runs
the verifying load of tests/integration/loadmix.py (keep-alive connections, every body checked)
for --secs seconds without upgrades, then for --secs seconds with `fdctl upgrade` run back to
back, --rounds times (alternating, so drift of the machine hits both alike), and prints for each
phase: requests, failures, p50/p90/p99 latency of non-streamed requests, p99 time to first byte
and p99 duration of streams, and the upgrades done.

Usage: bench/upgrade_latency.py [--bin build/bin] [--secs 15] [--rounds 2] [--workers 6] [--pause-ms 2]
Everything runs on this machine and stops by itself; the segment and temp files are removed.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bin"))
    ap.add_argument("--secs", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--pause-ms", type=float, default=2.0)
    ap.add_argument("--stream-tokens", type=int, default=20)
    ap.add_argument("--stream-delay-ms", type=int, default=15)
    args = ap.parse_args()
    os.environ["FD_BIN"] = os.path.abspath(args.bin)
    os.environ.setdefault("FD_IT_BUDGET_SECS", str(int(args.secs * 2 * args.rounds + 180)))

    import fdharness  # noqa: E402 - needs FD_BIN first
    import loadmix  # noqa: E402

    h = fdharness.Harness()
    try:
        router = h.start_router(config={"log": {"level": "warn"}})
        for i in range(2):
            h.start_sim(name="s%d" % i, router=router, register_interval_secs=3600)
        fdharness.wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="sims registered")

        def phase(upgrades):
            load = loadmix.LoadMix(router.port, workers=args.workers, stream_tokens=args.stream_tokens,
                                   stream_delay_ms=args.stream_delay_ms, max_secs=args.secs + 60,
                                   pause_ms=args.pause_ms).start()
            fdharness.wait_until(lambda: load.count() >= 20, 20, what="load started")
            t0 = time.monotonic()
            first = load.count()
            done, drains = 0, []
            while time.monotonic() - t0 < args.secs:
                if not upgrades:
                    time.sleep(0.1)
                    continue
                r = subprocess.run([fdharness.binary("fdctl"), "--port", str(router.port), "--control_socket",
                                    router.control_socket, "--json", "upgrade", "--drain_secs", "30"],
                                   capture_output=True, text=True, timeout=120)
                u = json.loads(r.stdout) if r.stdout.strip() else {}
                if u.get("new_pid"):
                    router.seen_dp_pids.add(u["new_pid"])
                if r.returncode != 0:
                    print("upgrade failed: %s %s" % (r.stdout, r.stderr))
                    continue
                done += 1
                drains.append(u["drain_ms"])
            load.stop()
            res = load.snapshot()[first:]
            return res, done, drains

        phases = {False: ([], [0], []), True: ([], [0], [])}
        for _ in range(args.rounds):
            for upg in (False, True):
                res, done, drains = phase(upg)
                phases[upg][0].extend(res)
                phases[upg][1][0] += done
                phases[upg][2].extend(drains)
        for name, upg in (("without upgrades", False), ("with upgrades", True)):
            res, (done,), drains = phases[upg]
            plain = [r.latency * 1000 for r in res if r.kind == "plain" and r.error is None]
            streams = [r for r in res if r.kind == "stream" and r.error is None]
            p = loadmix.percentile
            print("%-17s requests %6d  failed %d  upgrades %3d%s" % (
                name, len(res), sum(1 for r in res if r.error), done,
                "  (old DP drained in %.0f ms on average)" % (sum(drains) / len(drains)) if drains else ""))
            print("  non-streamed: %6d  p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  max %7.2f ms" % (
                len(plain), p(plain, .5), p(plain, .9), p(plain, .99), max(plain)))
            ttfb = [r.ttfb * 1000 for r in streams]
            total = [r.latency * 1000 for r in streams]
            print("  streams:      %6d  ttfb p50 %6.2f ms  ttfb p99 %6.2f ms  duration p99 %7.2f ms" % (
                len(streams), p(ttfb, .5), p(ttfb, .99), p(total, .99)))
            for r in res:
                if r.error:
                    print("  failure: %s" % r.error)
    finally:
        h.close()
        h.remove_files()


if __name__ == "__main__":
    main()
