#!/usr/bin/env python3
"""bench/pd_vs_mixed.py - requests per second through fd-router in splitwise (prefill/decode) mode
next to mixed mode, against the same kind of simulated instances, measured side by side in one
run (wrk, closed loop, alternating rounds).

  mixed:     client -> router -> one of two mixed fd-sims
  splitwise: client -> router -> prefill fd-sim (answer discarded) + decode fd-sim (relayed),
             the body rewritten with disaggregate_info and a request_id

Each splitwise request costs the router two upstream exchanges, so its ratio to mixed mode is
the figure to watch. Usage:  bench/pd_vs_mixed.py [--rounds 2] [--secs 5] [--connections 32]
Everything runs on 127.0.0.1 and is stopped by pid at exit.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

BODY = json.dumps({"model": "default", "stream": False, "max_tokens": 1,
                   "messages": [{"role": "user", "content": "hello from the pd benchmark"}]}).encode()
PD = ["--transfer-protocol", "ipc,rdma", "--device-ids", "0", "--connector-port", "7100", "--tokens", "1"]


def start_mixed(b):
    r = b.start_router("request_num")
    for _ in range(2):
        _, port = b.start_sim("--tokens", "1")
        r.register(port)
    r.wait_selectable(2)
    return r


def start_pd(b):
    r = b.start_router("request_num", extra={"server": {"splitwise": True}})
    for role in ("prefill", "decode"):
        _, port = b.start_sim("--role", role, *PD)
        r.register(port, role=role, connector_port=7100, transfer_protocol=["ipc", "rdma"], device_ids=[0])
    r.wait_selectable(2)
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.common_args(p)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--secs", type=int, default=5)
    p.add_argument("--connections", type=int, default=32)
    a = p.parse_args()
    b = benchlib.Bench("pd", a.results, a.bin)
    lua = benchlib.write_lua(os.path.join(b.tmp, "post.lua"), BODY)
    routers = {"mixed": start_mixed(b), "splitwise": start_pd(b)}
    runs = {k: [] for k in routers}
    for rnd in range(a.rounds):
        for name, r in routers.items():
            res = benchlib.wrk(r.url + "/v1/chat/completions", lua, a.connections, a.secs)
            if res["errors"]:
                raise SystemExit("%s: %d errors in round %d" % (name, res["errors"], rnd))
            runs[name].append(res)
            benchlib.log("%s round %d: %.0f req/s, p99 %.2f ms" % (name, rnd, res["rps"], res["p99"] * 1e3))
    best = {k: max(v, key=lambda x: x["rps"]) for k, v in runs.items()}
    ratio = best["splitwise"]["rps"] / best["mixed"]["rps"]
    header = ["mode", "req/s (best of %d)" % a.rounds, "p50 ms", "p99 ms", "ratio to mixed"]
    rows = [[k, "%.0f" % v["rps"], "%.2f" % (v["p50"] * 1e3), "%.2f" % (v["p99"] * 1e3),
             "%.2f" % (v["rps"] / best["mixed"]["rps"])] for k, v in best.items()]
    table = benchlib.fmt_table(header, rows)
    print(benchlib.machine_line())
    print(table)
    b.write("pd_vs_mixed.md", benchlib.machine_line() + "\n\n" + benchlib.fmt_md(header, rows) + "\n")
    b.write("pd_vs_mixed.json", json.dumps({"runs": runs, "ratio": ratio}, indent=1, default=str))


if __name__ == "__main__":
    main()
