"""tools/loadgen/report.py - turn the load generator's per-request results into the summary
(percentiles, throughput, errors, cache hit rates), print it as a table, and read the simulated
instances' prefix-cache counters from their Prometheus /metrics.

The fleet hit rate is taken from the instances, not only from the answers: the instances count
every prompt token they admitted (fastdeploy:prompt_tokens_total) and those found in their prefix
cache (fastdeploy:prefix_cache_hit_tokens_total), so the difference between a scrape before and
one after the run is what this run did, whatever the answers reported.
"""

import json
import urllib.request

HIT_COUNTERS = ("fastdeploy:prompt_tokens_total", "fastdeploy:prefix_cache_hit_tokens_total")


def percentile(sorted_values, p):
    """Linear interpolation between closest ranks; None for no values."""
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _dist(values):
    v = sorted(values)
    if not v:
        return {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    return {"n": len(v), "mean": sum(v) / len(v), "p50": percentile(v, 50), "p90": percentile(v, 90),
            "p99": percentile(v, 99), "max": v[-1]}


def discover(router_url, timeout=5):
    """Base URLs of the instances' /metrics, from the router's GET /registered."""
    with urllib.request.urlopen(router_url.rstrip("/") + "/registered", timeout=timeout) as r:
        reg = json.load(r)
    urls = []
    for role in ("mixed", "prefill", "decode"):
        for w in reg.get(role) or ():
            url = w.get("url") or ""
            mport = w.get("metrics_port")
            if mport not in (None, "", 0, "0"):
                host = url.rsplit(":", 1)[0]
                url = "%s:%s" % (host, mport)
            if url:
                urls.append(url)
    return urls


def scrape(instances, timeout=5):
    """{url: {counter: value}} for the hit counters; an instance that fails maps to None."""
    out = {}
    for url in instances:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=timeout) as r:
                text = r.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            out[url] = None
            continue
        vals = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in HIT_COUNTERS:
                vals[parts[0]] = float(parts[1])
        out[url] = vals
    return out


def fleet_hit_rate(before, after):
    """(hit tokens, prompt tokens, rate) over the instances scraped both times, or None."""
    prompt = hits = 0.0
    seen = False
    for url, a in after.items():
        b = before.get(url)
        if not a or not b or HIT_COUNTERS[0] not in a or HIT_COUNTERS[0] not in b:
            continue
        seen = True
        dp = a[HIT_COUNTERS[0]] - b[HIT_COUNTERS[0]]
        dh = a.get(HIT_COUNTERS[1], 0) - b.get(HIT_COUNTERS[1], 0)
        if dp < 0:  # the instance was reset or restarted during the run: its whole count is ours
            dp, dh = a[HIT_COUNTERS[0]], a.get(HIT_COUNTERS[1], 0)
        prompt += dp
        hits += dh
    if not seen:
        return None
    return {"hit_tokens": hits, "prompt_tokens": prompt, "rate": hits / prompt if prompt else 0.0}


def load_spread(per_instance, n_instances=0):
    """(max / mean requests per instance, instances used); the mean is over n_instances when given
    (the fleet, an instance that served nothing counting as 0), else over those that served.
    (None, 0) when nothing was served."""
    served = sum(per_instance.values())
    n = max(n_instances, len(per_instance))
    if not served:
        return None, 0
    return max(per_instance.values()) / (served / n), sum(1 for v in per_instance.values() if v)


def summarize(results, wall, n_instances=0):
    """The summary dict of a run; wall is (first send, last end) in monotonic seconds; n_instances
    is the fleet's size for the load spread (0: the instances that answered)."""
    ok = [r for r in results if r.error is None]
    errors = {}
    for r in results:
        if r.error is not None:
            errors[r.error] = errors.get(r.error, 0) + 1
    ttft = [r.token_times[0] - r.start for r in ok if r.token_times]
    e2e = [r.end - r.start for r in ok]
    itl = []
    for r in ok:
        itl.extend(b - a for a, b in zip(r.token_times, r.token_times[1:]))
    out_tokens = sum(r.completion_tokens if r.completion_tokens is not None else len(r.token_times) for r in ok)
    prompt_tokens = sum(r.prompt_tokens or 0 for r in ok)
    cached = sum(r.cached_tokens or 0 for r in ok)
    duration = max(wall[1] - wall[0], 1e-9)
    per_instance = {}
    for r in ok:
        if r.instance:
            per_instance[r.instance] = per_instance.get(r.instance, 0) + 1
    spread, used = load_spread(per_instance, n_instances)
    return {
        "requests": len(results),
        "completed": len(ok),
        "errors": errors,
        "duration_s": duration,
        "throughput_rps": len(ok) / duration,
        "throughput_tokens_per_s": out_tokens / duration,
        "output_tokens": out_tokens,
        "prompt_tokens": prompt_tokens,
        "ttft_s": _dist(ttft),
        "itl_s": _dist(itl),
        "e2e_s": _dist(e2e),
        "usage_cached_tokens": cached,
        "usage_hit_rate": cached / prompt_tokens if prompt_tokens else None,
        "per_instance": dict(sorted(per_instance.items())),
        "load_spread": spread,
        "instances_used": used,
    }


def _ms(v):
    return "-" if v is None else "%.1f" % (v * 1000)


def table(s, title):
    lines = [title]
    lines.append("requests %d, completed %d, errors %s, %.2f s" %
                 (s["requests"], s["completed"],
                  ", ".join("%s %d" % kv for kv in sorted(s["errors"].items())) or "0", s["duration_s"]))
    lines.append("throughput %.2f req/s, %.1f output tokens/s" % (s["throughput_rps"], s["throughput_tokens_per_s"]))
    lines.append("%-10s %9s %9s %9s %9s %9s" % ("ms", "mean", "p50", "p90", "p99", "max"))
    for name, key in (("TTFT", "ttft_s"), ("ITL", "itl_s"), ("E2E", "e2e_s")):
        d = s[key]
        lines.append("%-10s %9s %9s %9s %9s %9s" % (name, _ms(d["mean"]), _ms(d["p50"]), _ms(d["p90"]),
                                                     _ms(d["p99"]), _ms(d["max"])))
    if s["usage_hit_rate"] is not None:
        lines.append("cache hit rate (usage.cached_tokens): %.1f%% of %d prompt tokens" %
                     (100 * s["usage_hit_rate"], s["prompt_tokens"]))
    fleet = s.get("fleet_hit")
    if fleet:
        lines.append("cache hit rate (instances' /metrics): %.1f%% of %d prompt tokens" %
                     (100 * fleet["rate"], fleet["prompt_tokens"]))
    if s["per_instance"]:
        lines.append("per instance: " + " ".join("%s=%d" % kv for kv in s["per_instance"].items()))
        lines.append("load spread (max / mean requests per instance): %.2f, %d instances used" %
                     (s["load_spread"], s["instances_used"]))
    return "\n".join(lines)
