#!/usr/bin/env python3
"""bench/overhead.py - what the router costs: requests per second and added latency of fd-router
(each policy) next to nginx as a reverse proxy and next to no proxy at all, on the same backends.

Setup, all on 127.0.0.1, the approach of bench/proxy_vs_nginx.sh:
  backends   two instances: for whole (non-streamed) answers one nginx (1 worker) answering a fixed
             chat completion with `return 200` on two ports (as cheap as a backend gets, so the
             proxy's own cost shows); for streamed answers two fd-sim processes sending 16 SSE
             token events each, without delay
  direct     wrk on the first backend (for whole answers the same nginx process serves both
             ports; for streams the proxies have two fd-sim processes where direct has one)
  nginx      nginx (1 worker) as a reverse proxy, keep-alive upstreams, proxy_buffering off
  fd-router  one router per policy, each with 1 data-plane thread (as nginx has 1 worker), both
             backends registered
For each scenario (small ~150 B or large --large-kib request body, streamed or not) every target is
measured with wrk -t1: requests per second with --connections connections (and, for the proxies,
the CPU time their process spent per request meanwhile, which the machine's other work moves far
less than the requests per second), then latency with one connection (one request at a time: the
p50 difference to direct is the latency the proxy adds).
Then (unless --no-syscalls) one more small-request run per proxy under `strace -c -f` on its
process (the nginx worker, each router's data plane): system calls per proxied request.
Targets take turns within a round, --rounds rounds; each ratio is taken within one round (to
that round's nginx or direct), then averaged, with its range over the rounds. wrk, the proxies and the backends share this
machine's cores: compare the columns with each other, as ratios.

Output (in --results): overhead.txt, overhead.md, overhead.json, overhead.png.

  bench/overhead.py [--results DIR] [--bin DIR] [--policies a,b] [--rounds N] [--duration S]
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402

POLICIES = ["random", "round_robin", "power_of_two", "request_num", "process_tokens", "fd_metrics_score",
            "fd_remote_metrics_score", "cache_aware", "remote_cache_aware"]
COMPLETION = ('{"id":"chatcmpl-bench","object":"chat.completion","created":0,"model":"bench","choices":[{"index":0,'
              '"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,'
              '"completion_tokens":1,"total_tokens":9}}')
METRICS = ("fastdeploy:num_requests_running 0\\nfastdeploy:num_requests_waiting 0\\n"
           "fastdeploy:available_gpu_block_num 1000\\n")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    benchlib.common_args(p)
    p.add_argument("--no-pin", action="store_true", help="let the kernel place the processes (default: the proxy "
                                                             "under test on the last CPU, the rest on the others)")
    p.add_argument("--policies", default=",".join(POLICIES))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=int, default=3, help="seconds of each wrk run")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--large-kib", type=int, default=64, help="size of the large request body")
    p.add_argument("--scenarios", default="small,large,small-stream,large-stream")
    p.add_argument("--no-syscalls", action="store_true", help="skip counting the system calls per small request "
                                                              "of each proxy (one more wrk run each, under strace)")
    return p.parse_args()


def body(large_kib, stream):
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()
    content = "Say ok."
    if large_kib:
        text = []
        n = 0
        while n < large_kib * 1024:
            w = words[len(text) % len(words)]
            text.append(w)
            n += len(w) + 1
        content = " ".join(text)
    doc = {"model": "bench", "stream": stream, "max_tokens": 16,
           "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": content}]}
    return json.dumps(doc).encode()


def start_backends(b, a):
    """(nginx backend ports, fd-sim ports)"""
    ng = [benchlib.free_port(), benchlib.free_port()]
    servers = ""
    for port in ng:
        servers += ("  server {\n    listen 127.0.0.1:%d;\n    client_max_body_size 8m;\n"
                    "    client_body_buffer_size 1m;\n"
                    "    location = /health { default_type application/json; return 200 '{\"status\":\"ok\"}'; }\n"
                    "    location = /metrics { default_type text/plain; return 200 \"%s\"; }\n"
                    "    location / { default_type application/json; return 200 '%s'; }\n  }\n" %
                    (port, METRICS, COMPLETION))
    b.start_nginx("backends", servers)
    for port in ng:
        benchlib.wait_until(lambda: benchlib.http("GET", "http://127.0.0.1:%d/health" % port)[0] == 200, 10,
                            "nginx backend")
    sims = [b.start_sim("--tokens", 16)[1] for _ in range(2)]
    return ng, sims


def start_nginx_proxy(b, name, ports, keepalive=128):
    """nginx (1 worker) proxying to ports round robin, keeping up to `keepalive` idle upstream
    connections; returns (its port, its process)."""
    port = benchlib.free_port()
    up = "".join("    server 127.0.0.1:%d;\n" % p for p in ports)
    proc = b.start_nginx(name, role="proxy", http_body="  upstream backends {\n%s    keepalive %d;\n  }\n"
                        "  server {\n    listen 127.0.0.1:%d;\n    client_max_body_size 8m;\n"
                        "    client_body_buffer_size 1m;\n    location / {\n      proxy_pass http://backends;\n"
                        "      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n"
                        "      proxy_buffering off;\n    }\n  }" % (up, keepalive, port))
    benchlib.wait_until(lambda: benchlib.http("GET", "http://127.0.0.1:%d/health" % port)[0] == 200, 10,
                        "nginx proxy")
    return port, proc


def nginx_worker(master):
    """The pid of nginx's one worker process (a child of the master we started)."""
    with open("/proc/%d/task/%d/children" % (master.pid, master.pid)) as f:
        kids = [int(x) for x in f.read().split()]
    if len(kids) != 1:
        raise RuntimeError("nginx %d has %d children, expected its 1 worker" % (master.pid, len(kids)))
    return kids[0]


def count_syscalls(b, a, targets):
    """System calls per proxied small request of each proxy process (the nginx worker, each
    router's data plane), all of its threads: strace -c over one wrk run at --connections. strace
    slows the process it traces, so only the counts mean anything, not the req/s of that run."""
    lua = benchlib.write_lua(os.path.join(b.tmp, "syscalls.lua"), body(0, False))
    out = {}
    for name, url, pid in targets:
        calls, res = benchlib.syscalls_during(pid, lambda: b.wrk(url, lua, a.connections, a.duration),
                                              os.path.join(b.tmp, "strace-%d.txt" % pid), b.pinned("load", []))
        n = max(res["requests"], 1)
        out[name] = {"requests": res["requests"], "per_request": sum(calls.values()) / n,
                     "by_call": {k: v / n for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}}
        benchlib.log("syscalls %-34s %.2f per request over %d requests" % (name, out[name]["per_request"],
                                                                           res["requests"]))
    return out


def main():
    a = parse_args()
    policies = [p for p in a.policies.split(",") if p]
    scenarios = [s for s in a.scenarios.split(",") if s]
    b = benchlib.Bench("overhead", a.results, a.bin)
    if not a.no_pin:
        b.pin_cpus()
    benchlib.log(benchlib.machine_line() + (", CPUs by role: %s" % b.cpus if b.cpus else ""))
    ng, sims = start_backends(b, a)
    whole_port, whole_proc = start_nginx_proxy(b, "proxy-whole", ng)
    stream_port, stream_proc = start_nginx_proxy(b, "proxy-stream", sims)
    proxies = {"whole": whole_port, "stream": stream_port}
    nginx_pids = {"whole": nginx_worker(whole_proc), "stream": nginx_worker(stream_proc)}
    routers = {}
    for kind, ports in (("whole", ng), ("stream", sims)):
        for pol in policies:
            r = b.start_router(pol)
            for port in ports:
                r.register(port, metrics_port=port)
            routers[(kind, pol)] = r
    for r in routers.values():
        r.wait_selectable(2)
    benchlib.log("backends, nginx proxies and %d routers up" % len(routers))
    results = {}  # (scenario, target) -> list of measurements
    for rnd in range(a.rounds):
        for sc in scenarios:
            stream = sc.endswith("-stream")
            kind = "stream" if stream else "whole"
            lua = benchlib.write_lua(os.path.join(b.tmp, sc + ".lua"),
                                     body(a.large_kib if sc.startswith("large") else 0, stream))
            backends = sims if stream else ng
            targets = [("direct", "http://127.0.0.1:%d/v1/chat/completions" % backends[0], None),
                       ("nginx", "http://127.0.0.1:%d/v1/chat/completions" % proxies[kind], nginx_pids[kind])]
            targets += [("fd-router " + pol, routers[(kind, pol)].url + "/v1/chat/completions",
                         routers[(kind, pol)].dp_pid()) for pol in policies]
            for name, url, pid in targets:
                cpu0 = benchlib.cpu_seconds(pid) if pid else 0.0
                rps = b.wrk(url, lua, a.connections, a.duration)
                cpu = (benchlib.cpu_seconds(pid) - cpu0) / max(rps["requests"], 1) if pid else None
                lat = b.wrk(url, lua, 1, a.duration)
                m = {"rps": rps["rps"], "errors": rps["errors"] + lat["errors"], "p50": lat["p50"], "p99": lat["p99"],
                     "loaded_p50": rps["p50"], "loaded_p99": rps["p99"], "cpu": cpu}
                results.setdefault((sc, name), []).append(m)
                benchlib.log("round %d %-13s %-34s %8.0f req/s, 1-conn p50 %.3f ms p99 %.3f ms, %s, errors %d" %
                             (rnd + 1, sc, name, m["rps"], 1000 * m["p50"], 1000 * m["p99"],
                              "CPU %.1f us/req" % (1e6 * cpu) if cpu else "CPU -", m["errors"]))
    syscalls = None
    if not a.no_syscalls:
        targets = [("nginx", "http://127.0.0.1:%d/v1/chat/completions" % whole_port, nginx_pids["whole"])]
        targets += [("fd-router " + pol, routers[("whole", pol)].url + "/v1/chat/completions",
                     routers[("whole", pol)].dp_pid()) for pol in policies]
        syscalls = count_syscalls(b, a, targets)
    report(b, a, scenarios, policies, results, syscalls)
    return 0


def mean(xs):
    return sum(xs) / len(xs)


def summarize(results, sc, name):
    """Means over the rounds, and each round's req/s ratio to that round's nginx and direct."""
    ms = results[(sc, name)]
    out = {k: mean([m[k] for m in ms]) for k in ("rps", "p50", "p99", "loaded_p50", "loaded_p99")}
    out["errors"] = sum(m["errors"] for m in ms)
    out["vs_nginx"] = [m["rps"] / n["rps"] for m, n in zip(ms, results[(sc, "nginx")])]
    out["vs_direct"] = [m["rps"] / d["rps"] for m, d in zip(ms, results[(sc, "direct")])]
    out["added_p50"] = [m["p50"] - d["p50"] for m, d in zip(ms, results[(sc, "direct")])]
    out["cpu"] = mean([m["cpu"] for m in ms]) if all(m["cpu"] for m in ms) else None
    out["cpu_vs_nginx"] = [m["cpu"] / n["cpu"] for m, n in zip(ms, results[(sc, "nginx")]) if m["cpu"] and n["cpu"]]
    return out


def spread(xs, fmt):
    """mean, and (min..max) when there is more than one round"""
    if len(xs) == 1:
        return fmt % xs[0]
    return (fmt + " (" + fmt + ".." + fmt + ")") % (mean(xs), min(xs), max(xs))


CHART = """set terminal pngcairo size 1200,760 font ",9" noenhanced
set output "{png}"
set multiplot layout 2,1 title "proxy overhead: fd-router per policy and direct, next to nginx as a reverse proxy\\n"
{histogram}set xtics rotate by -25 scale 0
set ylabel "req/s with {conns} connections / nginx proxy's"
plot for [i=2:{n}:2] "{data}" using i:xtic(1) title word("{scen}", i/2), 1 with lines lc rgb "black" dt 2 title "nginx = 1"
set ylabel "added latency, 1 connection, p50 (microseconds)"
plot for [i=3:{n}:2] "{data}" using i:xtic(1) title word("{scen}", (i-1)/2)
unset multiplot
"""


def syscall_rows(syscalls):
    """target, requests, calls per request, / nginx's, the five most frequent calls per request"""
    rows = []
    for name, m in syscalls.items():
        top = ", ".join("%s %.2f" % kv for kv in list(m["by_call"].items())[:5])
        rows.append([name, m["requests"], "%.2f" % m["per_request"],
                     "%.2f" % (m["per_request"] / syscalls["nginx"]["per_request"]), top])
    return rows


def report(b, a, scenarios, policies, results, syscalls=None):
    names = ["direct", "nginx"] + ["fd-router " + p for p in policies]
    text = [benchlib.machine_line(),
            "wrk -t1, %d connections for req/s, 1 connection for latency; %ds per run, %d round(s), ratios are "
            "each round's (mean (min..max)); large body %d KiB; whole answers from nginx `return 200`, streams "
            "from fd-sim (16 tokens)" % (a.connections, a.duration, a.rounds, a.large_kib), ""]
    md = []
    rows_json = []
    for sc in scenarios:
        header = ["target", "req/s", "req/s / nginx", "req/s / direct", "CPU us/req", "CPU / nginx's", "p50 1-conn us",
                  "added p50 us", "p99 at %d conns ms" % a.connections, "errors"]
        body_rows = []
        for name in names:
            s = summarize(results, sc, name)
            body_rows.append([name, "%.0f" % s["rps"], spread(s["vs_nginx"], "%.2f"), spread(s["vs_direct"], "%.2f"),
                              "%.1f" % (1e6 * s["cpu"]) if s["cpu"] else "-",
                              spread(s["cpu_vs_nginx"], "%.2f") if s["cpu_vs_nginx"] else "-",
                              "%.0f" % (1e6 * s["p50"]), spread([1e6 * x for x in s["added_p50"]], "%+.0f"),
                              "%.2f" % (1000 * s["loaded_p99"]), s["errors"]])
            rows_json.append({"scenario": sc, "target": name, **s})
        text += ["scenario " + sc, benchlib.fmt_table(header, body_rows), ""]
        md += ["**%s**" % sc, "", benchlib.fmt_md(header, body_rows), ""]
    if syscalls:
        header = ["process (small requests, %d conns)" % a.connections, "requests", "syscalls / request",
                  "/ nginx's", "most frequent, per request"]
        rows = syscall_rows(syscalls)
        text += ["system calls per proxied request (strace -c -f on the process)", benchlib.fmt_table(header, rows),
                 ""]
        md += ["**system calls per proxied small request** (`strace -c -f` on the nginx worker / the data plane)",
               "", benchlib.fmt_md(header, rows), ""]
    out = "\n".join(text)
    print(out)
    b.write("overhead.txt", out + "\n")
    b.write("overhead.md", "\n".join(md))
    b.write("overhead.json", json.dumps({"machine": benchlib.machine(), "rows": rows_json, "syscalls": syscalls},
                                        indent=1))
    lines = ["# target " + " ".join("%s_vs_nginx %s_added_us" % (sc, sc) for sc in scenarios)]
    for name in names:
        cols = []
        for sc in scenarios:
            s = summarize(results, sc, name)
            cols += ["%.3f" % mean(s["vs_nginx"]), "%.1f" % (1e6 * mean(s["added_p50"]))]
        lines.append('"%s" %s' % (name.replace("fd-router ", ""), " ".join(cols)))
    script = (CHART.replace("{n}", str(1 + 2 * len(scenarios))).replace("{scen}", " ".join(scenarios))
              .replace("{conns}", str(a.connections)))
    b.chart("overhead.png", script, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
