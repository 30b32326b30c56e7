#!/usr/bin/env python3
"""bench/routing_quality.py - how much faster each routing policy makes a simulated fleet.

Question: with the same fleet and the same load, what prefix-cache hit rate, time to first token,
throughput and load spread does each scheduler.policy give with its shipped defaults, and does
the cache-aware policy meet issue 11's acceptance list?

Setup, all on 127.0.0.1: --instances fd-sim processes with the engine model on (continuous
batching, a prefill rate, a decode step growing with the batch, an LRU prefix cache of
--kv-blocks blocks of 16 tokens). The default sizes make the shared-prefix workload's prefixes
(16 groups x 512 words = 512 blocks) exceed one instance's cache (192 blocks) but fit the fleet's
(4 x 192): a policy that keeps each group on one instance hits, one that sprays every group over
every instance evicts. For each run a fresh fd-router (one data-plane thread, the policy's
shipped defaults unless policy/key=value says otherwise) gets the same instances, whose caches
and counters are flushed first, and tools/loadgen replays the workload (answer lengths vary
+-50% around --output-tokens, or users whose answers end on the same decode step would move in
lockstep). Every policy and workload runs with seeds 1..--runs (other prompts, other order); the
tables give the mean over the seeds and (min..max).
  closed loop (--concurrency users, so throughput shows what the fleet can do):
    shared-prefix  groups x prompts per group, a 512-word shared prefix and a 32-word suffix each
    hot-prefix     one group half of the requests (512-word prefix, 256-word suffixes), the other
                   half --groups/2 cold groups of --prompts-per-group as in shared-prefix
    chat           users x 4 rounds, the history (and a system prompt all users share) grows
    unique         nothing shared: what each policy costs when there is nothing to gain
  open loop: shared-prefix with Poisson arrivals at --open-rate (default: 0.7 x round_robin's
    closed-loop shared-prefix throughput measured in this run, about 70% of the fleet's capacity)
  replicas: shared-prefix, closed loop, through --replicas fd-router processes (each with its own
    port and shared memory, never told about each other) in front of the same instances, every
    request to one of them at random: the share of prefix groups whose requests all landed on one
    instance whichever router they went through, and the instances used.
The ideal hit rate (every group always on one instance that still holds it) is computed from the
workload as fd-sim counts hits: the leading full 16-token blocks already cached, never the
prompt's last token (tools/loadgen/workload.py ideal_hit).

Output (in --results): routing_quality.txt (tables, with the acceptance checks of --candidate),
routing_quality.md (the same tables for docs/benchmarks.md), routing_quality.json (every run),
routing_quality.png (hit rate, TTFT p50/p99 and throughput per policy and workload, means) and
routing_quality_spread.png (shared-prefix over the seeds). Every output names the commit measured
(FD_BENCH_COMMIT, else git's HEAD, +uncommitted when the tree differs).
Takes about 18 minutes with the defaults on 2 cores (90 runs; --all-policies: about 33), about 1.5
minutes with --quick.

  bench/routing_quality.py [--results DIR] [--bin DIR] [--policies a,b | --all-policies] [--workloads a,b]
                           [--runs N] [--open-rate R] [--replicas N] [--quick]
"""

import argparse
import json
import operator
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402

sys.path.insert(0, os.path.dirname(benchlib.LOADGEN))
import loadgen  # noqa: E402
import workload  # noqa: E402

POLICIES = ["round_robin", "request_num", "process_tokens", "cache_aware", "remote_cache_aware"]
OTHERS = ["random", "power_of_two", "fd_metrics_score", "fd_remote_metrics_score"]
CACHE_POLICIES = ("cache_aware", "remote_cache_aware")  # the rest only balance load
WORKLOADS = ["shared-prefix", "hot-prefix", "chat", "unique"]
OPEN = "shared-prefix (open loop)"
REPLICAS = "shared-prefix (replicas)"
SHORT = {"balance-abs-threshold": "abs", "balance-rel-threshold": "rel", "load-balance-weight": "lbw",
         "hit-ratio-weight": "hrw", "waiting-weight": "ww", "new-prefix-placement": "new"}


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


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    benchlib.common_args(p)
    p.add_argument("--policies", default=",".join(POLICIES),
                   help="comma-separated; policy/key=value/... sets scheduler keys for that run")
    p.add_argument("--all-policies", action="store_true", help="also " + ", ".join(OTHERS))
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--candidate", default="cache_aware", help="the policy the acceptance checks are about")
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--kv-blocks", type=int, default=192, help="per instance, blocks of 16 tokens")
    p.add_argument("--prefill-tokens-per-sec", type=float, default=8000)
    p.add_argument("--decode-step-ms", type=float, default=10)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--concurrency", type=int, default=24)
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--groups", type=int, default=16, help="shared-prefix groups (hot-prefix: half as many cold ones)")
    p.add_argument("--prompts-per-group", type=int, default=24)
    p.add_argument("--prefix-len", type=int, default=512)
    p.add_argument("--runs", type=int, default=3, help="seeds 1..runs for every policy, workload and section")
    p.add_argument("--open-rate", type=float, default=0,
                   help="open loop's arrivals/s (0: 0.7 x round_robin's closed-loop shared-prefix req/s)")
    p.add_argument("--max-outstanding", type=int, default=256, help="open loop: requests in flight at most")
    p.add_argument("--no-open", dest="open", action="store_false", help="skip the open-loop run")
    p.add_argument("--replicas", type=int, default=2, help="routers of the replica run (0: skip it)")
    p.add_argument("--split", choices=("random", "alternate"), default="random",
                   help="replica run: each request to a router drawn from the seed, or to each in turn")
    p.add_argument("--quick", action="store_true", help="a smaller load and one seed, for trying the script out")
    a = p.parse_args()
    if a.quick:
        a.groups, a.prompts_per_group, a.runs = 12, 5, 1
    a.policy_list = [x for x in a.policies.split(",") if x] + (OTHERS if a.all_policies else [])
    a.workload_list = [w for w in a.workloads.split(",") if w]
    unknown = set(a.workload_list) - set(WORKLOADS)
    if unknown:
        p.error("unknown workloads: " + ", ".join(sorted(unknown)))
    if a.open and not a.open_rate and ("round_robin" not in a.policy_list or "shared-prefix" not in a.workload_list):
        p.error("the open loop's default rate needs round_robin and shared-prefix in the run: pass --open-rate R "
                "(or --no-open)")
    return a


def workload_args(a, name, seed):
    """loadgen's workload options (no load options) for workload name."""
    common = ["--seed", seed, "--output-tokens", a.output_tokens, "--output-jitter", 0.5, "--timeout", 120]
    if name == "shared-prefix":
        return common + ["--workload", name, "--groups", a.groups, "--prompts-per-group", a.prompts_per_group,
                         "--prefix-len", a.prefix_len, "--suffix-len", 32]
    if name == "hot-prefix":
        return common + ["--workload", name, "--groups", max(1, a.groups // 2), "--prompts-per-group",
                         a.prompts_per_group, "--prefix-len", a.prefix_len, "--suffix-len", 32,
                         "--hot-prefix-len", a.prefix_len, "--hot-suffix-len", a.prefix_len // 2]
    n = a.groups * a.prompts_per_group
    if name == "chat":
        return common + ["--workload", name, "--users", n // 4, "--rounds", 4, "--system-len", 256,
                         "--turn-len", 64]
    return common + ["--workload", name, "--requests", n, "--prompt-len", a.prefix_len + 32]


def spec(a, name, seed):
    """The workload.Spec loadgen builds from workload_args (the same parser, so the same prompts)."""
    return loadgen.spec_of(loadgen.parse_args(["--url", "http://127.0.0.1:1"] +
                                              [str(x) for x in workload_args(a, name, seed)]))


def group_placement(trace):
    """(share of groups whose completed requests all went to one instance, mean share of a group's
    requests on its most used instance, instances group 0 used: hot-prefix's hot group) from
    loadgen's per-request trace."""
    by_group = {}
    for t in trace:
        if not t["error"] and t["instance"]:
            counts = by_group.setdefault(t["group"], {})
            counts[t["instance"]] = counts.get(t["instance"], 0) + 1
    if not by_group:
        return None, None, None
    single = sum(1 for c in by_group.values() if len(c) == 1) / len(by_group)
    top = sum(max(c.values()) / sum(c.values()) for c in by_group.values()) / len(by_group)
    return single, top, len(by_group.get("0", ()))


def cache_decisions(r):
    """{branch: count} of the router's cache_aware decisions (its /metrics), {} for other policies."""
    status, text = benchlib.http("GET", r.url + "/metrics")
    out = {}
    for line in text.decode("utf-8", "replace").splitlines() if status == 200 else ():
        if line.startswith('fd_router_cache_decisions_total{branch="'):
            branch = line.split('"')[1]
            out[branch] = out.get(branch, 0) + int(float(line.split()[-1]))
    return out if any(out.values()) else {}


def run_one(b, a, sims, policy, section, wl, seed, load, routers=1):
    """One run: fresh routers with policy, the instances flushed, the workload replayed; a row."""
    for port in sims:
        status, _ = benchlib.http("POST", "http://127.0.0.1:%d/sim/reset" % port, {"flush_cache": True})
        if status != 200:
            raise RuntimeError("fd-sim :%d /sim/reset answered %d" % (port, status))
    name, _, tweaks = policy.partition("/")
    extra = {}
    for kv in filter(None, tweaks.split("/")):
        k, _, v = kv.partition("=")
        try:
            extra[k] = float(v)
        except ValueError:  # a word, such as new-prefix-placement=hash
            extra[k] = v
    started = []
    try:
        for _ in range(routers):
            r = b.start_router(name, {"scheduler": extra, "manager": {"metrics-poll-interval-secs": 0.2}})
            started.append(r)
            for port in sims:
                r.register(port, metrics_port=port)
        for r in started:
            r.wait_selectable(len(sims))
        instances = ",".join("http://127.0.0.1:%d" % p for p in sims)
        s, trace = b.loadgen(",".join(r.url for r in started),
                             workload_args(a, wl, seed) + load + ["--instances", instances, "--split", a.split],
                             "%s %s %s" % (policy, section, wl), trace=True)
        decisions = {}
        for r in started:
            for k, v in cache_decisions(r).items():
                decisions[k] = decisions.get(k, 0) + v
    finally:
        for r in started:
            b.stop_router(r)
    if os.environ.get("RQ_TRACE_DIR"):  # every request's group, router and instance, for a closer look
        with open(os.path.join(os.environ["RQ_TRACE_DIR"], "trace-%s-%s-%s-%d.json" % (
                label(policy), section.replace(" ", "_"), wl, seed)), "w") as f:
            json.dump(trace, f)
    fleet = s.get("fleet_hit") or {}
    single, top, hot = group_placement(trace) if wl != "unique" else (None, None, None)
    row = {"policy": label(policy), "section": section, "workload": wl, "seed": seed, "hit_rate": fleet.get("rate"),
           "ttft_p50": s["ttft_s"]["p50"], "ttft_p99": s["ttft_s"]["p99"], "e2e_p50": s["e2e_s"]["p50"],
           "itl_p50": s["itl_s"]["p50"], "rps": s["throughput_rps"], "tps": s["throughput_tokens_per_s"],
           "errors": sum(s["errors"].values()), "error_kinds": s["errors"], "completed": s["completed"],
           "per_instance": s["per_instance"], "spread": s["load_spread"], "instances_used": s["instances_used"],
           "groups_single": single, "group_top_share": top,
           "hot_instances": hot if wl == "hot-prefix" else None, "cache_decisions": decisions, "load": load,
           "routers": routers}
    total = sum(decisions.values())
    row["fallback_imbalance"] = decisions.get("fallback_imbalance", 0) / total if total else None
    benchlib.log("%-24s %-26s seed %d: hit %s, TTFT p50 %s ms p99 %s ms, %.1f req/s, spread %s, errors %d" %
                 (policy, key_of(row), seed, pct(row["hit_rate"]), ms(row["ttft_p50"]), ms(row["ttft_p99"]),
                  row["rps"], ratio(row["spread"]), row["errors"]))
    return row


def key_of(row):
    """The table a row belongs to: the workload, or the open-loop or replica section."""
    return {"closed": row["workload"], "open": OPEN, "replicas": REPLICAS}[row["section"]]


# -- aggregation over seeds


def values(rows, key):
    return [r[key] for r in rows if r.get(key) is not None]


def mean(rows, key):
    v = values(rows, key)
    return sum(v) / len(v) if v else None


def ms(v):
    return "-" if v is None else "%.0f" % (1000 * v)


def pct(v):
    return "-" if v is None else "%.1f%%" % (100 * v)


def ratio(v):
    return "-" if v is None else "%.2f" % v


def span(rows, key, f):
    """mean (min..max) over the seeds; just the mean for one seed."""
    v = values(rows, key)
    if not v:
        return "-"
    if len(v) == 1:
        return f(v[0])
    return "%s (%s..%s)" % (f(sum(v) / len(v)), f(min(v)), f(max(v)))


def div(x, y):
    return x / y if x is not None and y else None


class Results:
    """The rows of a whole run, grouped by table (workload or section) and policy."""

    def __init__(self, rows, policies):
        self.rows = rows
        self.policies = [label(p) for p in policies]

    def sel(self, table, policy):
        return [r for r in self.rows if key_of(r) == table and r["policy"] == policy]

    def mean(self, table, policy, key):
        return mean(self.sel(table, policy), key)

    def tables(self):
        seen = []
        for r in self.rows:
            if key_of(r) not in seen:
                seen.append(key_of(r))
        return seen


def main_table(res, table):
    header = ["policy", "hit rate", "TTFT p50 ms", "TTFT p99 ms", "E2E p50 ms", "req/s", "spread"]
    grouped = table != "unique"
    if grouped:
        header += ["groups on 1 instance"]
    if table == "hot-prefix":
        header += ["instances of the hot group"]
    header += ["errors", "imbalance fallbacks", "p50 / rr", "p50 / rn", "p99 / rr", "p99 / rn", "req/s / rr",
               "req/s / rn"]
    body = []
    for pol in res.policies:
        sel = res.sel(table, pol)
        if not sel:
            continue
        line = [pol, span(sel, "hit_rate", pct), span(sel, "ttft_p50", ms), span(sel, "ttft_p99", ms),
                ms(mean(sel, "e2e_p50")), span(sel, "rps", lambda x: "%.1f" % x), ratio(mean(sel, "spread"))]
        if grouped:
            line.append(pct(mean(sel, "groups_single")))
        if table == "hot-prefix":
            line.append(span(sel, "hot_instances", lambda x: "%.3g" % x))
        line += [sum(r["errors"] for r in sel), pct(mean(sel, "fallback_imbalance"))]
        for key in ("ttft_p50", "ttft_p99", "rps"):
            for base in ("round_robin", "request_num"):
                line.append(ratio(div(mean(sel, key), res.mean(table, base, key))))
        body.append(line)
    return header, body


def replica_table(res, replicas):
    header = ["policy (%d routers)" % replicas, "groups on 1 instance", "top instance's share of a group",
              "instances used", "hit rate", "TTFT p50 ms", "TTFT p99 ms", "req/s", "spread", "errors"]
    body = []
    for pol in res.policies:
        sel = res.sel(REPLICAS, pol)
        if sel:
            body.append([pol, span(sel, "groups_single", pct), pct(mean(sel, "group_top_share")),
                         span(sel, "instances_used", lambda x: "%g" % x), span(sel, "hit_rate", pct),
                         span(sel, "ttft_p50", ms), span(sel, "ttft_p99", ms), span(sel, "rps", lambda x: "%.1f" % x),
                         ratio(mean(sel, "spread")), sum(r["errors"] for r in sel)])
    return header, body


def ideal_line(ideal):
    return ("ideal hit rate (every group always on one instance that holds it): %s; 0.9 x ideal = %s" %
            (pct(ideal), pct(0.9 * ideal)))


def acceptance(res, cand, ideal, n_instances):
    """Issue 11's acceptance list, measured: (criterion, measured, target, verdict) per line."""
    cand = label(cand)
    out = []

    def check(what, got, target, ok):
        verdict = "-" if got is None or target is None else ("pass" if ok(got, target) else "FAIL")
        out.append([what, got, target, verdict])

    le, ge = operator.le, operator.ge

    def m(table, pol, key):
        return res.mean(table, pol, key)

    def best(table, key, pick):
        v = [m(table, p, key) for p in res.policies if p.split("[")[0] not in CACHE_POLICIES]
        v = [x for x in v if x is not None]
        return pick(v) if v else None

    def mins(*xs):
        xs = [x for x in xs if x is not None]
        return min(xs) if xs else None

    def scaled(x, k):
        return None if x is None else x * k

    for table in ("shared-prefix", OPEN):
        if not res.sel(table, cand):
            continue
        ideal_t = ideal.get("shared-prefix")
        check("%s: hit rate >= 0.9 x ideal" % table, m(table, cand, "hit_rate"), scaled(ideal_t, 0.9), ge)
        check("%s: TTFT p50 <= round_robin's / 3" % table, m(table, cand, "ttft_p50"),
              scaled(m(table, "round_robin", "ttft_p50"), 1 / 3), le)
        check("%s: TTFT p99 <= round_robin's and request_num's" % table, m(table, cand, "ttft_p99"),
              mins(m(table, "round_robin", "ttft_p99"), m(table, "request_num", "ttft_p99")), le)
        if table == "shared-prefix":  # in an open loop throughput is the offered rate
            check("%s: req/s >= 1.5 x round_robin's" % table, m(table, cand, "rps"),
                  scaled(m(table, "round_robin", "rps"), 1.5), ge)
        check("%s: load spread (max / mean per instance) <= 1.25" % table, m(table, cand, "spread"), 1.25, le)
    if res.sel("hot-prefix", cand):
        check("hot-prefix: TTFT p50 <= round_robin's / 2", m("hot-prefix", cand, "ttft_p50"),
              scaled(m("hot-prefix", "round_robin", "ttft_p50"), 0.5), le)
        check("hot-prefix: TTFT p99 <= round_robin's", m("hot-prefix", cand, "ttft_p99"),
              m("hot-prefix", "round_robin", "ttft_p99"), le)
    if res.sel("chat", cand):
        check("chat: hit rate >= the best load-balancing policy's", m("chat", cand, "hit_rate"),
              best("chat", "hit_rate", max), ge)
        check("chat: TTFT p50 <= the best load-balancing policy's", m("chat", cand, "ttft_p50"),
              best("chat", "ttft_p50", min), le)
    if res.sel("unique", cand):
        check("unique: TTFT p50 <= 1.05 x request_num's", m("unique", cand, "ttft_p50"),
              scaled(m("unique", "request_num", "ttft_p50"), 1.05), le)
    if res.sel(REPLICAS, cand):
        check("replicas: groups on a single instance >= 90%", m(REPLICAS, cand, "groups_single"), 0.9, ge)
        check("replicas: instances used >= 3 of 4 (3/4 of the fleet)", m(REPLICAS, cand, "instances_used"),
              0.75 * n_instances, ge)
    for line in out:  # ratios as percentages, times in ms, counts as they are; fine enough to show the verdict
        for i in (1, 2):
            v = line[i]
            if v is None:
                line[i] = "-"
            elif "hit rate" in line[0] or "groups" in line[0]:
                line[i] = "%.2f%%" % (100 * v)
            elif "TTFT" in line[0]:
                line[i] = "%.1f" % (1000 * v)
            else:
                line[i] = "%.2f" % v
    return ["acceptance check (%s, means over the seeds)" % cand, "measured", "target", "verdict"], out


# -- charts

CHART = """set terminal pngcairo size 1300,820 font ",9" noenhanced
set output "{png}"
set multiplot layout 2,2 title "routing quality, {commit}: {title}\\n"
{histogram}set xtics rotate by -30 scale 0
set ylabel "prefix-cache hit rate (%)"
plot for [i=2:{n}:4] "{data}" using i:xtic(1) title word("{words}", (i-2)/4+1)
set ylabel "TTFT p50 (ms)"
plot for [i=3:{n}:4] "{data}" using i:xtic(1) title word("{words}", (i-2)/4+1)
set ylabel "TTFT p99 (ms)"
plot for [i=4:{n}:4] "{data}" using i:xtic(1) title word("{words}", (i-2)/4+1)
set ylabel "throughput (req/s)"
plot for [i=5:{n}:4] "{data}" using i:xtic(1) title word("{words}", (i-2)/4+1)
unset multiplot
"""

SPREAD_CHART = """set terminal pngcairo size 1200,480 font ",9" noenhanced
set output "{png}"
set multiplot layout 1,3 title "shared-prefix, closed loop, {runs} runs (seeds 1-{runs}): mean, min and max; {commit}"
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


def charts(b, res, runs, commit):
    tables = [t for t in res.tables() if t != REPLICAS]
    words = [t.replace(" (open loop)", ",open").replace(" ", "_") for t in tables]
    lines = ["# policy " + " ".join("%s_%s" % (w, k) for w in words for k in ("hit%", "ttft_p50", "ttft_p99", "rps"))]
    for pol in res.policies:
        line = ['"%s"' % pol]
        for t in tables:
            sel = res.sel(t, pol)
            line += (["%.2f" % (100 * (mean(sel, "hit_rate") or 0)), ms(mean(sel, "ttft_p50")),
                      ms(mean(sel, "ttft_p99")), "%.2f" % mean(sel, "rps")] if sel else ["0"] * 4)
        lines.append(" ".join(line))
    script = (CHART.replace("{title}", "means of seeds 1..%d; bars per policy: %s" % (runs, ", ".join(words)))
              .replace("{n}", str(1 + 4 * len(tables))).replace("{words}", " ".join(words))
              .replace("{commit}", "commit " + commit))
    b.chart("routing_quality.png", script, "\n".join(lines) + "\n")
    spread = ["# policy hit hit_min hit_max ttft ttft_min ttft_max rps rps_min rps_max"]
    for pol in res.policies:
        sel = res.sel("shared-prefix", pol)
        if not sel:
            continue
        vals = []
        for key, scale in (("hit_rate", 100), ("ttft_p50", 1000), ("rps", 1)):
            v = [scale * x for x in values(sel, key)] or [0]
            vals += [sum(v) / len(v), min(v), max(v)]
        spread.append('"%s" ' % pol + " ".join("%.2f" % x for x in vals))
    if len(spread) > 1:
        script = (SPREAD_CHART.replace("{xmax}", "%.1f" % (len(spread) - 1.4)).replace("{runs}", str(runs))
                  .replace("{commit}", "commit " + commit))
        b.chart("routing_quality_spread.png", script, "\n".join(spread) + "\n")


# -- the run


def main():
    a = parse_args()
    t_start = time.monotonic()
    b = benchlib.Bench("routing_quality", a.results, a.bin)
    machine = benchlib.machine()
    benchlib.log(benchlib.machine_line())
    sims = []
    for i in range(a.instances):
        _, port = b.start_sim("--engine", "on", "--kv-blocks", a.kv_blocks, "--block-tokens", 16,
                              "--prefill-tokens-per-sec", a.prefill_tokens_per_sec, "--decode-step-ms",
                              a.decode_step_ms, "--max-batch", a.max_batch, "--tokens", a.output_tokens,
                              "--seed", i + 1)
        sims.append(port)
    closed = ["--concurrency", a.concurrency]
    rows = []
    for seed in range(1, a.runs + 1):  # seeds outermost: a drift of the machine's load hits every policy alike
        for wl in a.workload_list:
            for pol in a.policy_list:
                rows.append(run_one(b, a, sims, pol, "closed", wl, seed, closed))
    res = Results(rows, a.policy_list)
    open_rate = a.open_rate
    if a.open:
        if not open_rate:
            open_rate = 0.7 * res.mean("shared-prefix", "round_robin", "rps")
        benchlib.log("open loop: Poisson arrivals at %.1f/s" % open_rate)
        load = ["--arrival", "poisson", "--rate", "%.3f" % open_rate, "--max-outstanding", a.max_outstanding]
        for seed in range(1, a.runs + 1):
            for pol in a.policy_list:
                rows.append(run_one(b, a, sims, pol, "open", "shared-prefix", seed, load))
    if a.replicas > 0:
        for seed in range(1, a.runs + 1):
            for pol in a.policy_list:
                rows.append(run_one(b, a, sims, pol, "replicas", "shared-prefix", seed, closed, routers=a.replicas))
    ideal = {}
    for wl in ("shared-prefix", "hot-prefix"):
        v = [workload.ideal_hit(spec(a, wl, seed)) for seed in range(1, a.runs + 1)]
        ideal[wl] = sum(v) / len(v)

    sizing = ("%d fd-sim instances, engine on: kv-blocks %d x 16 tokens, prefill %g tokens/s, decode step %g ms "
              "+ 0.2 ms/seq, max-batch %d; closed loop: %d users; %d output tokens +-50%%; "
              "shared-prefix: %d groups x %d, "
              "prefix %d + suffix 32 words (prefixes: %d blocks; one instance holds %d, the fleet %d); hot-prefix: "
              "%d cold groups x %d, and a hot group of %d prompts, prefix %d + suffix %d words; seeds 1..%d; shipped "
              "defaults unless the policy's name says otherwise" %
              (a.instances, a.kv_blocks, a.prefill_tokens_per_sec, a.decode_step_ms, a.max_batch, a.concurrency,
               a.output_tokens, a.groups, a.prompts_per_group, a.prefix_len, a.groups * a.prefix_len // 16,
               a.kv_blocks, a.kv_blocks * a.instances, max(1, a.groups // 2), a.prompts_per_group,
               max(1, a.groups // 2) * a.prompts_per_group, a.prefix_len, a.prefix_len // 2, a.runs))
    notes = {
        "shared-prefix": ideal_line(ideal["shared-prefix"]),
        "hot-prefix": ideal_line(ideal["hot-prefix"]),
        "unique": "nothing to share: what each policy costs when there is nothing to gain",
        OPEN: ("Poisson arrivals at %.1f/s (%s), at most %d outstanding (beyond: dropped, counted as errors); %s" %
               (open_rate, "--open-rate" if a.open_rate else "0.7 x round_robin's closed-loop req/s",
                a.max_outstanding, ideal_line(ideal["shared-prefix"]))),
    }
    head = "commit %s (binaries %s); %d CPUs, %s, Linux %s, load at start %s, %s" % (
        machine["commit"], a.bin, machine["nproc"], machine["cpu"], machine["kernel"], " ".join(machine["loadavg"]),
        machine["date"])
    legend = ("mean over the seeds (min..max); spread: max / mean requests per instance (an unused instance "
              "counts 0); groups on 1 instance: share of prefix groups (chat: sessions) whose requests all went "
              "to one instance; imbalance fallbacks: share of cache_aware's decisions taken by process_tokens "
              "(fd_router_cache_decisions_total); ratios: of the means, to round_robin (rr) and request_num (rn)")
    took = "%d runs in %.1f min" % (len(rows), (time.monotonic() - t_start) / 60)
    text = [head, sizing + "; " + took, legend, ""]
    md = ["![routing quality](img/bench-routing_quality.png)", "",
          "Measured at commit %s (%d CPUs, %s). %s; %s." % (machine["commit"], machine["nproc"], machine["cpu"],
                                                            sizing, took), "",
          legend[0].upper() + legend[1:] + ".", "", "![spread](img/bench-routing_quality_spread.png)", ""]
    for table in res.tables():
        if table == REPLICAS:
            header, body = replica_table(res, a.replicas)
            title = ("%s: %d fd-router processes (own port and shared memory each) in front of the same instances, "
                     "each request to one of them %s" %
                     (REPLICAS, a.replicas, "at random" if a.split == "random" else "in turn"))
        else:
            header, body = main_table(res, table)
            title = table + (" (closed loop)" if table in WORKLOADS else "")
        note = notes.get(table)
        text += [title] + ([note] if note else []) + [benchlib.fmt_table(header, body), ""]
        md += ["**%s**" % title, ""] + ([note, ""] if note else []) + [benchlib.fmt_md(header, body), ""]
    if label(a.candidate) in res.policies:
        header, body = acceptance(res, a.candidate, ideal, a.instances)
        text += [benchlib.fmt_table(header, body), ""]
        md += [benchlib.fmt_md(header, body), ""]
    out = "\n".join(text)
    print(out)
    b.write("routing_quality.txt", out + "\n")
    b.write("routing_quality.md", "\n".join(md))
    b.write("routing_quality.json", json.dumps({"machine": machine, "sizing": sizing, "args": vars(a),
                                                "open_rate": open_rate, "ideal_hit": ideal, "rows": rows}, indent=1))
    charts(b, res, a.runs, machine["commit"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
