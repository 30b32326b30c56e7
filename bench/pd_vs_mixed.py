#!/usr/bin/env python3
"""bench/pd_vs_mixed.py - requests per second through fd-router in splitwise (prefill/decode) mode
next to mixed mode, against the same kind of instances, measured side by side in one run (wrk,
closed loop, alternating rounds).

  mixed:     client -> router -> one of two mixed instances
  splitwise: client -> router -> prefill instance (answer discarded) + decode instance (relayed),
             the body rewritten with disaggregate_info and a request_id

Each splitwise request costs the router two upstream exchanges, so its ratio to mixed mode is
the figure to watch. The instances are one nginx worker on four ports answering like an instance
(--backends nginx, the default: an answer costs nginx a few microseconds, so the router is what is
measured), or fd-sim processes (--backends fd-sim: each answer costs fd-sim about as much CPU as the
router spends on it, and a splitwise request needs two, so on a 2-CPU machine that ratio measures
the backends). The router runs on the last CPU, the instances and wrk on the others (--no-pin: the
kernel places them). Besides req/s, each round records the data plane's CPU time per request
(/proc/<pid>/stat around the wrk run), which other work on a shared machine disturbs less.

--body-kib N sends chat bodies of about N KiB (bench/overhead.py's large body) instead of the
150-byte one: what the splice and the legs cost per byte of prompt.

Usage:  bench/pd_vs_mixed.py [--rounds 3] [--secs 5] [--connections 32] [--backends nginx|fd-sim]
                             [--body-kib N]
Everything runs on 127.0.0.1 and is stopped by pid at exit.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import overhead  # noqa: E402
import scale  # noqa: E402

BODY = json.dumps({"model": "default", "stream": False, "max_tokens": 1,
                   "messages": [{"role": "user", "content": "hello from the pd benchmark"}]}).encode()
PD = ["--transfer-protocol", "ipc,rdma", "--device-ids", "0", "--connector-port", "7100", "--tokens", "1"]


def instances(b, backends, roles):
    """One instance port per role (None: mixed): ports of one nginx worker, or an fd-sim each."""
    if backends == "nginx":
        return scale.start_fleet(b, len(roles))
    return [b.start_sim(*(["--tokens", "1"] if role is None else ["--role", role] + PD))[1] for role in roles]


def start_mixed(b, backends):
    r = b.start_router("request_num")
    for port in instances(b, backends, [None, None]):
        r.register(port)
    r.wait_selectable(2)
    return r


def start_pd(b, backends):
    r = b.start_router("request_num", extra={"server": {"splitwise": True}})
    roles = ["prefill", "decode"]
    for role, port in zip(roles, instances(b, backends, roles)):
        r.register(port, role=role, connector_port=7100, transfer_protocol=["ipc", "rdma"], device_ids=[0])
    r.wait_selectable(2)
    return r


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.common_args(p)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--secs", type=int, default=5)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--backends", choices=("nginx", "fd-sim"), default="nginx")
    p.add_argument("--body-kib", type=int, default=0, help="chat bodies of about N KiB (0: a 150-byte one)")
    p.add_argument("--no-pin", action="store_true", help="let the kernel place the processes (default: the router "
                                                         "on the last CPU, the instances and wrk on the others)")
    a = p.parse_args()
    b = benchlib.Bench("pd", a.results, a.bin)
    if not a.no_pin:
        b.pin_cpus()
    benchlib.log(benchlib.machine_line() + (", CPUs by role: %s" % b.cpus if b.cpus else ""))
    lua = benchlib.write_lua(os.path.join(b.tmp, "post.lua"), overhead.body(a.body_kib, False) if a.body_kib else BODY)
    routers = {"mixed": start_mixed(b, a.backends), "splitwise": start_pd(b, a.backends)}
    runs = {k: [] for k in routers}
    for rnd in range(a.rounds):
        for name, r in routers.items():
            dp = r.dp_pid()
            cpu0 = benchlib.cpu_seconds(dp)
            res = b.wrk(r.url + "/v1/chat/completions", lua, a.connections, a.secs)
            res["dp_cpu_us"] = 1e6 * (benchlib.cpu_seconds(dp) - cpu0) / max(1.0, res["rps"] * a.secs)
            if res["errors"]:
                raise SystemExit("%s: %d errors in round %d" % (name, res["errors"], rnd))
            runs[name].append(res)
            benchlib.log("%s round %d: %.0f req/s, p99 %.2f ms, data plane %.1f us CPU per request" %
                         (name, rnd, res["rps"], res["p99"] * 1e3, res["dp_cpu_us"]))
    best = {k: max(v, key=lambda x: x["rps"]) for k, v in runs.items()}
    cpu = {k: median([x["dp_cpu_us"] for x in v]) for k, v in runs.items()}
    ratio = best["splitwise"]["rps"] / best["mixed"]["rps"]
    round_ratios = [s["rps"] / m["rps"] for m, s in zip(runs["mixed"], runs["splitwise"])]
    header = ["mode", "req/s (best of %d)" % a.rounds, "p50 ms", "p99 ms", "ratio to mixed",
              "DP CPU us/req (median)", "mixed's CPU / this"]
    rows = [[k, "%.0f" % v["rps"], "%.2f" % (v["p50"] * 1e3), "%.2f" % (v["p99"] * 1e3),
             "%.2f" % (v["rps"] / best["mixed"]["rps"]), "%.1f" % cpu[k], "%.2f" % (cpu["mixed"] / cpu[k])]
            for k, v in best.items()]
    note = ("backends: %s; body: %s; wrk -t1 -c%d -d%ds, %d alternating rounds; ratio per round: %s" %
            (a.backends, "%d KiB" % a.body_kib if a.body_kib else "150 bytes", a.connections, a.secs, a.rounds,
             ", ".join("%.2f" % x for x in round_ratios)))
    print(benchlib.machine_line())
    print(note)
    print(benchlib.fmt_table(header, rows))
    b.write("pd_vs_mixed.md", benchlib.machine_line() + "\n\n" + note + "\n\n" + benchlib.fmt_md(header, rows) + "\n")
    b.write("pd_vs_mixed.json", json.dumps({"runs": runs, "ratio": ratio, "round_ratios": round_ratios,
                                            "dp_cpu_us": cpu, "backends": a.backends,
                                            "body_kib": a.body_kib}, indent=1, default=str))


if __name__ == "__main__":
    main()
