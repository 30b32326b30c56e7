#!/usr/bin/env python3
"""bench/scale.py - what the router costs as the fleet grows: end-to-end requests per second and
added latency with 1 to 1,000 registered instances, and the data plane's selection cost.

Instances are real but cheap: one nginx process (1 worker) listens on --max-instances ports of
127.0.0.1 and answers on each of them like an instance (GET /health 200, GET /metrics in the
Prometheus format, POST completions with a fixed chat completion). An instance is its URL, so
each port is a separate registered instance, health-checked and selectable like any other,
while the machine only carries one backend process. For each instance count and policy a fresh
fd-router (1 data-plane thread) loads the instances from a register.yaml, waits until all are
selectable, and wrk -t1 measures requests per second (--connections connections) and the
latency with one connection, next to wrk on one instance directly. The ratio to the same
policy's 1-instance figure is the cost of the fleet's size.

The same is measured for nginx (1 worker) as a reverse proxy with the first N ports as one upstream
group (round robin, keep-alive with room for a connection to every instance), unless --no-nginx:
whatever the kernel and the backend pay for spreading the load over N sockets instead of one, nginx
pays too, so its own N-vs-1 ratio is the bound this machine puts on any proxy's. Besides req/s, each
cell records the proxy process's CPU time per request (the data plane; the nginx worker), from
/proc/<pid>/stat around the wrk run: other work on a shared machine disturbs it less.

If the bench_selection program (bench/selection_cost.c, see bench/README.md) is in --bin, its
table (ns per dp_select against instance count and prompt length) is run too (--selection-scale
scales its time) and appended.

Output (in --results): scale.txt, scale.md, scale.json, scale.png.

  bench/scale.py [--results DIR] [--bin DIR] [--counts 1,10,100,1000] [--policies a,b] [--no-nginx]
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402
import overhead  # noqa: E402

POLICIES = ["round_robin", "random", "power_of_two", "request_num", "process_tokens", "fd_remote_metrics_score",
            "cache_aware"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    benchlib.common_args(p)
    p.add_argument("--no-pin", action="store_true", help="let the kernel place the processes (default: the proxy "
                                                             "under test on the last CPU, the rest on the others)")
    p.add_argument("--counts", default="1,10,100,1000")
    p.add_argument("--policies", default=",".join(POLICIES))
    p.add_argument("--duration", type=int, default=3, help="seconds of each wrk run")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--health-interval", type=float, default=5,
                   help="manager.health-check-interval-secs (5, the default: 200 probes/s at 1,000 instances)")
    p.add_argument("--no-nginx", action="store_true", help="skip the nginx reverse proxy's row")
    p.add_argument("--selection-scale", type=float, default=0.3, help="bench_selection --budget-scale (0: skip)")
    return p.parse_args()


def free_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(benchlib.free_port())
    return sorted(ports)


def start_fleet(b, n):
    ports = free_ports(n)
    listens = "".join("    listen 127.0.0.1:%d;\n" % p for p in ports)
    b.start_nginx("fleet", "  server {\n%s"
                           "    location = /health { default_type application/json; return 200 '{\"status\":\"ok\"}'; }\n"
                           "    location = /metrics { default_type text/plain; return 200 \"%s\"; }\n"
                           "    location / { default_type application/json; return 200 '%s'; }\n  }" %
                  (listens, overhead.METRICS, overhead.COMPLETION))
    for port in (ports[0], ports[-1]):
        benchlib.wait_until(lambda: benchlib.http("GET", "http://127.0.0.1:%d/health" % port)[0] == 200, 20,
                            "the nginx fleet on %d ports" % n)
    return ports


def run_selection(b, a):
    exe = os.path.join(a.bin, "bench_selection")
    if a.selection_scale <= 0 or not os.access(exe, os.X_OK):
        benchlib.log("bench_selection not in %s: no selection-cost table" % a.bin)
        return None
    csv = os.path.join(a.results, "selection_cost.csv")
    r = subprocess.run([exe, "--csv", csv, "--budget-scale", str(a.selection_scale)], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        benchlib.log("bench_selection failed (%d): %s" % (r.returncode, r.stderr[-1000:]))
    return r.stdout


NGINX = "nginx-proxy"  # one word: the chart names its lines with gnuplot's word()


def measure(b, a, n, name, url, pid, lua, direct_url):
    """One cell: req/s next to direct's, the proxy process's CPU time per request, latency."""
    d_rps = b.wrk(direct_url, lua, a.connections, a.duration)
    cpu0 = benchlib.cpu_seconds(pid)
    rps = b.wrk(url + "/v1/chat/completions", lua, a.connections, a.duration)
    cpu_us = 1e6 * (benchlib.cpu_seconds(pid) - cpu0) / max(1.0, rps["rps"] * a.duration)
    d_lat = b.wrk(direct_url, lua, 1, a.duration)
    lat = b.wrk(url + "/v1/chat/completions", lua, 1, a.duration)
    row = {"instances": n, "policy": name, "rps": rps["rps"], "direct_rps": d_rps["rps"], "cpu_us": cpu_us,
           "p50": lat["p50"], "p99": lat["p99"], "direct_p50": d_lat["p50"], "direct_p99": d_lat["p99"],
           "errors": rps["errors"] + lat["errors"]}
    benchlib.log("%4d instances %-24s %7.0f req/s (direct %7.0f), %.1f us CPU per request, 1-conn p50 %.0f us "
                 "(direct %.0f us), errors %d" % (n, name, row["rps"], row["direct_rps"], cpu_us, 1e6 * row["p50"],
                                                  1e6 * row["direct_p50"], row["errors"]))
    return row


def nginx_worker(master):
    """The nginx worker's pid (the master's one child), once it runs."""
    def child():
        with open("/proc/%d/task/%d/children" % (master, master)) as f:
            kids = [int(x) for x in f.read().split()]
        return kids[0] if kids else None
    benchlib.wait_until(child, 10, "the nginx worker")
    return child()


def measure_nginx(b, a, n, ports, lua, direct_url):
    port, proc = overhead.start_nginx_proxy(b, "proxy-%d" % n, ports[:n], keepalive=2 * (n + a.connections))
    try:
        return measure(b, a, n, NGINX, "http://127.0.0.1:%d" % port, nginx_worker(proc.pid), lua, direct_url)
    finally:
        b.stop(proc)


def main():
    a = parse_args()
    counts = [int(c) for c in a.counts.split(",") if c]
    policies = [p for p in a.policies.split(",") if p]
    b = benchlib.Bench("scale", a.results, a.bin)
    if not a.no_pin:
        b.pin_cpus()
    benchlib.log(benchlib.machine_line() + (", CPUs by role: %s" % b.cpus if b.cpus else ""))
    ports = start_fleet(b, max(counts))
    lua = benchlib.write_lua(os.path.join(b.tmp, "small.lua"), overhead.body(0, False))
    direct_url = "http://127.0.0.1:%d/v1/chat/completions" % ports[0]
    rows = []
    names = policies + ([] if a.no_nginx else [NGINX])
    for n in counts:
        reg = os.path.join(b.tmp, "register-%d.yaml" % n)
        with open(reg, "w") as f:
            f.write("instances:\n")
            for port in ports[:n]:
                f.write("  - {role: mixed, host_ip: 127.0.0.1, port: %d, metrics_port: %d}\n" % (port, port))
        for pol in names:
            if pol == NGINX:
                rows.append(measure_nginx(b, a, n, ports, lua, direct_url))
                continue
            r = b.start_router(pol, {"manager": {"health-check-interval-secs": a.health_interval}}, register_path=reg)
            try:
                r.wait_selectable(n, timeout=120)
                rows.append(measure(b, a, n, pol, r.url, r.dp_pid(), lua, direct_url))
            finally:
                b.stop_router(r)
    report(b, a, counts, names, rows, run_selection(b, a))
    return 0


CHART = """set terminal pngcairo size 1100,460 font ",9" noenhanced
set output "{png}"
set multiplot layout 1,2 title "fd-router with 1 to {max} registered instances (1 DP thread, nginx instances)"
set logscale x
set xlabel "registered instances"
set grid
set key outside bottom center horizontal
set ylabel "req/s as a fraction of the same run's direct req/s"
set yrange [0:*]
plot for [i=2:{n}] "{data}" using 1:i with linespoints title word("{pols}", i-1)
set ylabel "added latency, 1 connection, p50 (us)"
plot for [i={n1}:{n2}] "{data}" using 1:i with linespoints title word("{pols}", i-{n})
unset multiplot
"""


def report(b, a, counts, policies, rows, selection):
    def get(n, pol):
        return next(r for r in rows if r["instances"] == n and r["policy"] == pol)

    header = ["policy"] + ["%d inst req/s (/direct)" % n for n in counts] + ["%d vs %d" % (counts[-1], counts[0])]
    t1 = []
    for pol in policies:
        line = [pol]
        for n in counts:
            r = get(n, pol)
            line.append("%.0f (%.2f)" % (r["rps"], r["rps"] / r["direct_rps"]))
        first, last = get(counts[0], pol), get(counts[-1], pol)
        line.append("%.2f" % ((last["rps"] / last["direct_rps"]) / (first["rps"] / first["direct_rps"])))
        t1.append(line)
    header_cpu = (["policy"] + ["%d inst CPU us/req" % n for n in counts] +
                  ["%d vs %d (CPU at %d / at %d)" % (counts[-1], counts[0], counts[0], counts[-1])])
    t_cpu = [[pol] + ["%.1f" % get(n, pol)["cpu_us"] for n in counts] +
             ["%.2f" % (get(counts[0], pol)["cpu_us"] / max(1e-9, get(counts[-1], pol)["cpu_us"]))]
             for pol in policies]
    header2 = ["policy"] + ["%d inst added p50 us" % n for n in counts]
    t2 = [[pol] + ["%+.0f" % (1e6 * (get(n, pol)["p50"] - get(n, pol)["direct_p50"])) for n in counts]
          for pol in policies]
    errors = sum(r["errors"] for r in rows)
    text = [benchlib.machine_line(),
            "wrk -t1 -c%d -d%ds (req/s) and -c1 (latency), whole answers; instances: one nginx worker on %d ports; "
            "errors %d" % (a.connections, a.duration, counts[-1], errors), "",
            "requests per second (fraction of direct, measured next to it); last column: that fraction at %d "
            "instances over the one at %d" % (counts[-1], counts[0]),
            benchlib.fmt_table(header, t1), "",
            "CPU time of the proxy process per request (the data plane; %s: its worker); last column: the "
            "throughput ratio that predicts for a proxy bound by its own CPU" % NGINX,
            benchlib.fmt_table(header_cpu, t_cpu), "", "latency added to direct's (1 connection, p50)",
            benchlib.fmt_table(header2, t2), ""]
    md = [benchlib.fmt_md(header, t1), "", benchlib.fmt_md(header_cpu, t_cpu), "", benchlib.fmt_md(header2, t2), ""]
    if selection:
        text += ["bench_selection (bench/selection_cost.c): ns per selection, median / p99", selection]
        md += ["```", selection.strip(), "```", ""]
    out = "\n".join(text)
    print(out)
    b.write("scale.txt", out + "\n")
    b.write("scale.md", "\n".join(md))
    b.write("scale.json", json.dumps({"machine": benchlib.machine(), "rows": rows, "selection": selection}, indent=1))
    lines = ["# instances " + " ".join("%s_frac" % p for p in policies) + " " + " ".join("%s_us" % p for p in policies)]
    for n in counts:
        lines.append("%d %s %s" % (n, " ".join("%.3f" % (get(n, p)["rps"] / get(n, p)["direct_rps"]) for p in policies),
                                   " ".join("%.1f" % (1e6 * (get(n, p)["p50"] - get(n, p)["direct_p50"]))
                                            for p in policies)))
    k = len(policies)
    script = (CHART.replace("{max}", str(counts[-1])).replace("{n}", str(k + 1)).replace("{n1}", str(k + 2))
              .replace("{n2}", str(2 * k + 1)).replace("{pols}", " ".join(policies)))
    b.chart("scale.png", script, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
