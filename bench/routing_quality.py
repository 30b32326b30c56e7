#!/usr/bin/env python3
"""bench/routing_quality.py - how much faster each routing policy makes a simulated fleet.

Question: with the same fleet and the same load, what prefix-cache hit rate, time to first token
and throughput does each scheduler.policy give?

Setup, all on 127.0.0.1: --instances fd-sim processes with the engine model on (continuous
batching, a prefill rate, a decode step growing with the batch, an LRU prefix cache of
--kv-blocks blocks of 16 tokens). The default sizes make the shared-prefix workload's prefixes
(16 groups x 512 words = 512 blocks) exceed one instance's cache (192 blocks) but fit the fleet's
(4 x 192): a policy that keeps each group on one instance hits, one that sprays every group over
every instance evicts. For each policy a fresh fd-router (one data-plane thread, the policy's
documented defaults) gets the same instances, whose caches and counters are flushed before each
run, and tools/loadgen replays each workload closed-loop (--concurrency users), so throughput
shows what the fleet can do, not the offered rate (answer lengths vary +-50% around
--output-tokens, or users whose answers end on the same decode step would move in lockstep):
  shared-prefix  groups x prompts per group, a shared prefix and a unique suffix each
  chat           users x rounds, the history (and a system prompt all users share) grows each round
  unique         nothing shared: what each policy costs when there is nothing to gain
Then cache_aware, round_robin and request_num run the shared-prefix workload twice more (seeds 2
and 3: other prompts, other order) for the spread over three runs.

Output (in --results): routing_quality.txt (tables), routing_quality.json, routing_quality.png
(hit rate, TTFT p50/p99 and throughput per policy and workload) and routing_quality_spread.png.
Takes about 6-8 minutes with the defaults.

  bench/routing_quality.py [--results DIR] [--bin DIR] [--policies a,b] [--workloads a,b] [--quick]
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402

# cache_aware twice: with the documented defaults, and with an imbalance test loose enough for a
# loaded fleet (with the defaults, 1 request and 20% apart already count as imbalanced, and then
# process_tokens chooses instead of the prefix tree)
TUNED = "cache_aware/balance-abs-threshold=8/balance-rel-threshold=0.5"
POLICIES = ["random", "round_robin", "power_of_two", "request_num", "process_tokens", "fd_metrics_score",
            "fd_remote_metrics_score", "cache_aware", TUNED, "remote_cache_aware"]
TRIO = ["cache_aware", TUNED, "round_robin", "request_num"]
SHORT = {"balance-abs-threshold": "abs", "balance-rel-threshold": "rel", "load-balance-weight": "lbw",
         "hit-ratio-weight": "hrw", "waiting-weight": "ww"}


def label(policy):
    """cache_aware/balance-abs-threshold=8 -> cache_aware[abs=8]"""
    name, _, tweaks = policy.partition("/")
    if not tweaks:
        return name
    parts = []
    for kv in tweaks.split("/"):
        k, _, v = kv.partition("=")
        parts.append("%s=%s" % (SHORT.get(k, k), v))
    return "%s[%s]" % (name, ",".join(parts))
WORKLOADS = ["shared-prefix", "chat", "unique"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    benchlib.common_args(p)
    p.add_argument("--policies", default=",".join(POLICIES),
                   help="comma-separated; policy/key=value/... sets scheduler keys for that run")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--kv-blocks", type=int, default=192, help="per instance, blocks of 16 tokens")
    p.add_argument("--prefill-tokens-per-sec", type=float, default=8000)
    p.add_argument("--decode-step-ms", type=float, default=10)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--concurrency", type=int, default=24)
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--groups", type=int, default=16)
    p.add_argument("--prompts-per-group", type=int, default=24)
    p.add_argument("--prefix-len", type=int, default=512)
    p.add_argument("--runs", type=int, default=3, help="runs of the trio on shared-prefix (seeds 1..runs)")
    p.add_argument("--quick", action="store_true", help="a smaller load, for trying the script out")
    a = p.parse_args()
    if a.quick:
        a.prompts_per_group, a.runs = 6, 2
    return a


def workload_args(a, name, seed):
    common = ["--seed", seed, "--concurrency", a.concurrency, "--output-tokens", a.output_tokens,
              "--output-jitter", 0.5, "--timeout", 120]
    if name == "shared-prefix":
        return common + ["--workload", name, "--groups", a.groups, "--prompts-per-group", a.prompts_per_group,
                         "--prefix-len", a.prefix_len, "--suffix-len", 32]
    n = a.groups * a.prompts_per_group
    if name == "chat":
        return common + ["--workload", name, "--users", n // 4, "--rounds", 4, "--system-len", 256,
                         "--turn-len", 64]
    return common + ["--workload", name, "--requests", n, "--prompt-len", a.prefix_len + 32]


def run_one(b, a, sims, policy, wl, seed):
    for port in sims:
        status, _ = benchlib.http("POST", "http://127.0.0.1:%d/sim/reset" % port, {"flush_cache": True})
        if status != 200:
            raise RuntimeError("fd-sim :%d /sim/reset answered %d" % (port, status))
    name, _, tweaks = policy.partition("/")
    extra = {}
    for kv in filter(None, tweaks.split("/")):
        k, _, v = kv.partition("=")
        extra[k] = float(v)
    r = b.start_router(name, {"scheduler": extra, "manager": {"metrics-poll-interval-secs": 0.2}})
    try:
        for port in sims:
            r.register(port, metrics_port=port)
        r.wait_selectable(len(sims))
        instances = ",".join("http://127.0.0.1:%d" % p for p in sims)
        s = b.loadgen(r.url, workload_args(a, wl, seed) + ["--instances", instances], "%s %s" % (policy, wl))
        decisions = cache_decisions(r)
    finally:
        b.stop_router(r)
    fleet = s.get("fleet_hit") or {}
    row = {"policy": label(policy), "workload": wl, "seed": seed, "hit_rate": fleet.get("rate"),
           "ttft_p50": s["ttft_s"]["p50"], "ttft_p99": s["ttft_s"]["p99"], "e2e_p50": s["e2e_s"]["p50"],
           "itl_p50": s["itl_s"]["p50"], "rps": s["throughput_rps"], "tps": s["throughput_tokens_per_s"],
           "errors": sum(s["errors"].values()), "completed": s["completed"],
           "per_instance": s["per_instance"], "cache_decisions": decisions}
    total = sum(decisions.values())
    row["fallback_imbalance"] = decisions.get("fallback_imbalance", 0) / total if total else None
    benchlib.log("%-30s %-13s seed %d: hit %.1f%%, TTFT p50 %.0f ms p99 %.0f ms, %.1f req/s, errors %d" %
                 (policy, wl, seed, 100 * (row["hit_rate"] or 0), 1000 * (row["ttft_p50"] or 0),
                  1000 * (row["ttft_p99"] or 0), row["rps"], row["errors"]))
    return row


def cache_decisions(r):
    """{branch: count} of the router's cache_aware decisions (its /metrics), {} for other policies."""
    status, text = benchlib.http("GET", r.url + "/metrics")
    out = {}
    for line in text.decode("utf-8", "replace").splitlines() if status == 200 else ():
        if line.startswith('fd_router_cache_decisions_total{branch="'):
            branch = line.split('"')[1]
            out[branch] = int(float(line.split()[-1]))
    return out if any(out.values()) else {}


def ms(v):
    return "-" if v is None else "%.0f" % (1000 * v)


def pct(v):
    return "-" if v is None else "%.1f%%" % (100 * v)


def matrix_tables(rows, workloads):
    out = []
    for wl in workloads:
        sel = [r for r in rows if r["workload"] == wl and r["seed"] == 1]
        base = next((r for r in sel if r["policy"] == "round_robin"), None)
        header = ["policy", "hit rate", "TTFT p50 ms", "TTFT p99 ms", "E2E p50 ms", "req/s", "tok/s", "errors",
                  "imbalance fallbacks"]
        if base:
            header += ["TTFT p50 / rr", "req/s / rr"]
        body = []
        for r in sel:
            line = [r["policy"], pct(r["hit_rate"]), ms(r["ttft_p50"]), ms(r["ttft_p99"]), ms(r["e2e_p50"]),
                    "%.1f" % r["rps"], "%.0f" % r["tps"], r["errors"], pct(r["fallback_imbalance"])]
            if base:
                line += ["%.2f" % (r["ttft_p50"] / base["ttft_p50"]) if r["ttft_p50"] and base["ttft_p50"] else "-",
                         "%.2f" % (r["rps"] / base["rps"]) if base["rps"] else "-"]
            body.append(line)
        out.append((wl, header, body))
    return out


def spread_table(rows, runs):
    header = ["policy (shared-prefix)", "runs", "hit rate", "TTFT p50 ms", "TTFT p99 ms", "req/s"]
    body = []
    for pol in map(label, TRIO):
        sel = [r for r in rows if r["policy"] == pol and r["workload"] == "shared-prefix" and r["seed"] <= runs]
        if not sel:
            continue

        def span(key, f):
            v = [r[key] for r in sel if r[key] is not None]
            if not v:
                return "-"
            mean = sum(v) / len(v)
            return "%s (%s..%s)" % (f(mean), f(min(v)), f(max(v)))

        body.append([pol, len(sel), span("hit_rate", pct), span("ttft_p50", ms), span("ttft_p99", ms),
                     span("rps", lambda x: "%.1f" % x)])
    return header, body


CHART = """set terminal pngcairo size 1200,800 font ",9" noenhanced
set output "{png}"
set multiplot layout 2,2 title "routing quality: {title}\\n"
{histogram}set xtics rotate by -30 scale 0
set ylabel "prefix-cache hit rate (%)"
plot for [i=2:{n}:4] "{data}" using i:xtic(1) title columnheader(i)
set ylabel "TTFT p50 (ms)"
plot for [i=3:{n}:4] "{data}" using i:xtic(1) title columnheader(i)
set ylabel "TTFT p99 (ms)"
plot for [i=4:{n}:4] "{data}" using i:xtic(1) title columnheader(i)
set ylabel "throughput (req/s)"
plot for [i=5:{n}:4] "{data}" using i:xtic(1) title columnheader(i)
unset multiplot
"""

SPREAD_CHART = """set terminal pngcairo size 1100,480 font ",9" noenhanced
set output "{png}"
set multiplot layout 1,3 title "shared-prefix, {runs} runs (seeds 1-{runs}): mean, min and max"
set xtics rotate by -30 scale 0
set style fill solid 0.6 border -1
set boxwidth 0.6
set grid ytics
set yrange [0:*]
set xrange [-0.6:{xmax}]
set ylabel "hit rate (%)"
plot "{data}" using 0:2:xtic(1) with boxes notitle, "" using 0:2:3:4 with yerrorbars lc rgb "black" pt 0 notitle
set ylabel "TTFT p50 (ms)"
plot "{data}" using 0:5:xtic(1) with boxes notitle, "" using 0:5:6:7 with yerrorbars lc rgb "black" pt 0 notitle
set ylabel "throughput (req/s)"
plot "{data}" using 0:8:xtic(1) with boxes notitle, "" using 0:8:9:10 with yerrorbars lc rgb "black" pt 0 notitle
unset multiplot
"""


def charts(b, rows, policies, workloads, runs):
    header = ["policy"]
    for wl in workloads:
        header += ["%s_%s" % (wl, k) for k in ("hit%", "ttft_p50", "ttft_p99", "rps")]
    lines = ["# " + " ".join(header)]
    for pol in map(label, policies):
        line = ['"%s"' % pol]
        for wl in workloads:
            r = next((x for x in rows if x["policy"] == pol and x["workload"] == wl and x["seed"] == 1), None)
            line += (["%.2f" % (100 * (r["hit_rate"] or 0)), ms(r["ttft_p50"]), ms(r["ttft_p99"]), "%.2f" % r["rps"]]
                     if r else ["0"] * 4)
        lines.append(" ".join(line))
    # each column title says the workload; the clusters are the policies
    script = CHART.replace("{title}", ", ".join(workloads) + " (bars in this order per policy)")
    script = script.replace("{n}", str(len(header)))
    script = script.replace("title columnheader(i)", 'title word("%s", (i-2)/4+1)' % " ".join(workloads))
    b.chart("routing_quality.png", script, "\n".join(lines) + "\n")
    spread = ["# policy hit hit_min hit_max ttft ttft_min ttft_max rps rps_min rps_max"]
    for pol in map(label, TRIO):
        sel = [r for r in rows if r["policy"] == pol and r["workload"] == "shared-prefix" and r["seed"] <= runs]
        if not sel:
            continue
        vals = []
        for key, scale in (("hit_rate", 100), ("ttft_p50", 1000), ("rps", 1)):
            v = [scale * (r[key] or 0) for r in sel]
            vals += [sum(v) / len(v), min(v), max(v)]
        spread.append('"%s" ' % pol + " ".join("%.2f" % x for x in vals))
    if len(spread) > 1:
        script = SPREAD_CHART.replace("{xmax}", "%.1f" % (len(spread) - 1.4)).replace("{runs}", str(runs))
        b.chart("routing_quality_spread.png", script, "\n".join(spread) + "\n")


def main():
    a = parse_args()
    policies = [p for p in a.policies.split(",") if p]
    workloads = [w for w in a.workloads.split(",") if w]
    b = benchlib.Bench("routing_quality", a.results, a.bin)
    benchlib.log(benchlib.machine_line())
    sims = []
    for i in range(a.instances):
        _, port = b.start_sim("--engine", "on", "--kv-blocks", a.kv_blocks, "--block-tokens", 16,
                              "--prefill-tokens-per-sec", a.prefill_tokens_per_sec, "--decode-step-ms",
                              a.decode_step_ms, "--max-batch", a.max_batch, "--tokens", a.output_tokens,
                              "--seed", i + 1)
        sims.append(port)
    rows = []
    for wl in workloads:
        for pol in policies:
            rows.append(run_one(b, a, sims, pol, wl, 1))
    if "shared-prefix" in workloads:
        for seed in range(2, a.runs + 1):
            for pol in TRIO:
                if pol in policies:
                    rows.append(run_one(b, a, sims, pol, "shared-prefix", seed))
    sizing = ("%d fd-sim instances, engine on: kv-blocks %d x 16 tokens, prefill %g tokens/s, decode step %g ms "
              "+ 0.2 ms/seq, max-batch %d; closed loop, %d users, %d output tokens +-50%%; shared-prefix: %d groups x %d, "
              "prefix %d + suffix 32 words (prefixes: %d blocks; one instance holds %d, the fleet %d)" %
              (a.instances, a.kv_blocks, a.prefill_tokens_per_sec, a.decode_step_ms, a.max_batch, a.concurrency,
               a.output_tokens, a.groups, a.prompts_per_group, a.prefix_len, a.groups * a.prefix_len // 16,
               a.kv_blocks, a.kv_blocks * a.instances))
    text = [benchlib.machine_line(), sizing, ""]
    for wl, header, body in matrix_tables(rows, workloads):
        text += ["workload " + wl, benchlib.fmt_table(header, body), ""]
    sh, sb = spread_table(rows, a.runs)
    if sb:
        text += ["spread over %d runs (mean (min..max))" % a.runs, benchlib.fmt_table(sh, sb), ""]
    out = "\n".join(text)
    print(out)
    b.write("routing_quality.txt", out + "\n")
    md = []
    for wl, header, body in matrix_tables(rows, workloads):
        md += ["**%s**" % wl, "", benchlib.fmt_md(header, body), ""]
    if sb:
        md += ["**spread over %d runs** (mean (min..max))" % a.runs, "", benchlib.fmt_md(sh, sb), ""]
    b.write("routing_quality.md", "\n".join(md))
    b.write("routing_quality.json", json.dumps({"machine": benchlib.machine(), "sizing": sizing, "rows": rows},
                                               indent=1))
    charts(b, rows, policies, workloads, a.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
