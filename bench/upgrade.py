#!/usr/bin/env python3
"""bench/upgrade.py - the latency trace of a steady load through hot upgrades of the data plane.

Question: what does a request see while `fdctl upgrade` replaces fd-router's data plane?

Setup, all on 127.0.0.1: fd-router (request_num, 1 data-plane thread) with two fd-sim instances
(--tokens streamed tokens, --token-delay-ms apart). tools/loadgen sends streamed chat requests
open-loop (Poisson, --rate per second) for --secs seconds with a per-request trace; after a quiet
first fifth, `fdctl upgrade` runs --upgrades times, evenly spaced, each waiting for its outcome.
The trace (one line per request: start, TTFT, end-to-end, status) and the moments of the
upgrades share CLOCK_MONOTONIC, so the chart puts them on one time axis. Requests that started
within --window-ms after an upgrade began are compared with the rest.

Skips (exit 0, says so) when this build's fdctl has no `upgrade` command.

Output (in --results): upgrade.txt, upgrade.md, upgrade.json, upgrade_trace.csv, upgrade.png.

  bench/upgrade.py [--results DIR] [--bin DIR] [--upgrades 10] [--secs 30] [--rate 100]
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "loadgen"))

import benchlib  # noqa: E402
import report as lgreport  # noqa: E402 - tools/loadgen/report.py


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    benchlib.common_args(p)
    p.add_argument("--upgrades", type=int, default=10)
    p.add_argument("--secs", type=float, default=30)
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--token-delay-ms", type=int, default=5)
    p.add_argument("--window-ms", type=float, default=1000, help="a request this soon after an upgrade is 'during'")
    return p.parse_args()


def has_upgrade(fdctl):
    r = subprocess.run([fdctl, "--help"], capture_output=True, text=True, timeout=10)
    return "upgrade" in r.stdout


def read_trace(path):
    rows = []
    with open(path) as f:
        header = f.readline().strip().split(",")
        for line in f:
            rows.append(dict(zip(header, line.rstrip("\n").split(","))))
    return rows


def stats(rows):
    ok = [r for r in rows if not r["error"]]
    ttft = sorted(float(r["ttft_s"]) for r in ok if r["ttft_s"])
    e2e = sorted(float(r["e2e_s"]) for r in ok)
    p = lgreport.percentile
    return {"requests": len(rows), "errors": len(rows) - len(ok),
            "ttft_p50": p(ttft, 50), "ttft_p99": p(ttft, 99), "ttft_max": ttft[-1] if ttft else None,
            "e2e_p50": p(e2e, 50), "e2e_p99": p(e2e, 99), "e2e_max": e2e[-1] if e2e else None}


CHART = """set terminal pngcairo size 1100,480 font ",9" noenhanced
set output "{png}"
set title "{title}"
set xlabel "time since the load started (s)"
set ylabel "ms"
set logscale y
set grid
set key outside bottom center horizontal
set datafile separator ","
{arrows}
plot "{data}" using 3:($4*1000) every ::1 with points pt 7 ps 0.3 lc rgb "#3070c0" title "TTFT", \\
     "" using 3:($5*1000) every ::1 with points pt 7 ps 0.3 lc rgb "#a0a0a0" title "end-to-end", \\
     "" using 3:(strlen(strcol(7)) > 0 ? 1 : 1/0) every ::1 with points pt 2 ps 1 lc rgb "red" title "failed", \\
     1/0 with lines lc rgb "#d04040" dt 2 title "fdctl upgrade started"
"""


def main():
    a = parse_args()
    b = benchlib.Bench("upgrade", a.results, a.bin)
    if not has_upgrade(b.binary("fdctl")):
        print("upgrade: this fdctl has no `upgrade` command; skipped")
        return 0
    benchlib.log(benchlib.machine_line())
    sims = [b.start_sim("--tokens", a.tokens, "--token-delay-ms", a.token_delay_ms)[1] for _ in range(2)]
    r = b.start_router("request_num")
    for port in sims:
        r.register(port)
    r.wait_selectable(2)
    trace = os.path.join(a.results, "upgrade_trace.csv")
    out_json = os.path.join(b.tmp, "load.json")
    n = int(a.rate * a.secs * 1.2) + 10
    argv = [sys.executable, benchlib.LOADGEN, "--url", r.url, "--workload", "unique", "--requests", n,
            "--prompt-len", 32, "--output-tokens", a.tokens, "--rate", a.rate, "--duration", a.secs, "--timeout", 60,
            "--json", out_json, "--trace", trace, "--quiet"]
    load = subprocess.Popen([str(x) for x in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t_start = time.monotonic()
    upgrades = []
    gap = a.secs * 0.7 / max(a.upgrades, 1)
    for i in range(a.upgrades):
        due = t_start + a.secs * 0.2 + i * gap
        while time.monotonic() < due:
            time.sleep(0.01)
        t = time.monotonic()
        u = r.upgrade()
        u["t_monotonic"], u["secs"] = t, time.monotonic() - t
        upgrades.append(u)
        benchlib.log("upgrade %d: %s in %.2f s (%s)" % (i + 1, "ok" if u["ok"] else "FAILED", u["secs"],
                                                      {k: v for k, v in u.items() if k in ("new_pid", "drain_ms")}))
    _, err = load.communicate(timeout=a.secs + 180)
    if not os.path.exists(out_json):
        raise RuntimeError("loadgen failed: " + err[-2000:])
    with open(out_json) as f:
        lg = json.load(f)
    t0 = lg["t0_monotonic"]
    rows = read_trace(trace)
    marks = [u["t_monotonic"] - t0 for u in upgrades]

    def during(row):
        s = float(row["start_s"])
        return any(0 <= s - m <= a.window_ms / 1000 for m in marks)

    quiet = stats([x for x in rows if not during(x)])
    busy = stats([x for x in rows if during(x)])
    whole = stats(rows)
    ok_upgrades = sum(1 for u in upgrades if u["ok"])
    drains = [u["drain_ms"] for u in upgrades if isinstance(u.get("drain_ms"), (int, float))]
    header = ["requests", "count", "errors", "TTFT p50 ms", "TTFT p99 ms", "TTFT max ms", "E2E p50 ms", "E2E p99 ms",
              "E2E max ms"]

    def line(name, s):
        f = lambda v: "-" if v is None else "%.1f" % (1000 * v)  # noqa: E731
        return [name, s["requests"], s["errors"], f(s["ttft_p50"]), f(s["ttft_p99"]), f(s["ttft_max"]),
                f(s["e2e_p50"]), f(s["e2e_p99"]), f(s["e2e_max"])]

    body = [line("all", whole), line("started < %g ms after an upgrade" % a.window_ms, busy),
            line("the others", quiet)]
    ratio = ("TTFT p99 during / outside upgrades: %.2f; E2E p99: %.2f" %
             (busy["ttft_p99"] / quiet["ttft_p99"], busy["e2e_p99"] / quiet["e2e_p99"])
             if busy["ttft_p99"] and quiet["ttft_p99"] else "")
    text = [benchlib.machine_line(),
            "fd-router request_num, 1 DP thread, 2 fd-sim (%d tokens, %d ms apart); loadgen open loop %g req/s "
            "streamed for %g s; %d/%d upgrades succeeded%s" %
            (a.tokens, a.token_delay_ms, a.rate, a.secs, ok_upgrades, len(upgrades),
             ", old data plane drained in %.0f ms on average" % (sum(drains) / len(drains)) if drains else ""),
            "", benchlib.fmt_table(header, body), ratio, ""]
    out = "\n".join(text)
    print(out)
    b.write("upgrade.txt", out + "\n")
    b.write("upgrade.md", benchlib.fmt_md(header, body) + "\n\n" + ratio + "\n")
    b.write("upgrade.json", json.dumps({"machine": benchlib.machine(), "upgrades": upgrades, "marks_s": marks,
                                        "all": whole, "during": busy, "outside": quiet}, indent=1))
    arrows = "\n".join('set arrow from %.3f, graph 0 to %.3f, graph 1 nohead lc rgb "#d04040" dt 2' % (m, m)
                       for m in marks)
    title = "%d hot upgrades (fdctl upgrade) under %g req/s of streamed requests: %d requests, %d failed" % (
        len(upgrades), a.rate, whole["requests"], whole["errors"])
    with open(trace) as f:
        data = f.read()
    b.chart("upgrade.png", CHART.replace("{arrows}", arrows).replace("{title}", title), data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
