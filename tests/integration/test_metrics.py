"""tests/integration/test_metrics.py - what GET /metrics exposes, and the Grafana dashboard on it.

  * Every metric the dashboard (deploy/grafana/fd-router-dashboard.json) queries exists in
    /metrics of a router that served a few requests.
  * The latency histograms by instance and route: cumulative buckets, _count equal to the
    requests the instance answered on that route; they and fd_router_requests_total are kept across an upgrade and a data
    plane's kill -9 (they live in shared memory).
  * fd_router_build_info, and FastDeploy's cache counters also under the fd_router_ prefix.
"""

import json
import os
import re
import signal

import fdharness
from fdharness import FdTestCase, wait_until
from test_upgrade import upgrade

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD = os.path.join(HERE, "..", "..", "deploy", "grafana", "fd-router-dashboard.json")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(router):
    """{(name, labels): value} of every sample."""
    out = {}
    for line in router.get("/metrics", timeout=5).text().splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def dashboard_metrics():
    with open(DASHBOARD) as f:
        d = json.load(f)
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in d["templating"]["list"] if v.get("type") == "query"]
    names = set()
    for e in exprs:
        names.update(re.findall(r"\b((?:fd_router_|inference_|router_)[a-z0-9_]+)", e))
    return names


def histogram(samples, name, url, route):
    def mine(k):
        return 'url="%s"' % url in k[1] and 'route="%s"' % route in k[1]

    buckets = sorted(((float(re.search(r'[{,]le="([^"]+)"', k[1]).group(1).replace("+Inf", "inf")), v)
                      for k, v in samples.items() if k[0] == name + "_bucket" and mine(k)))
    count = [v for k, v in samples.items() if k[0] == name + "_count" and mine(k)]
    return buckets, count[0] if count else None


class MetricsTest(FdTestCase):
    def setUp(self):
        super().setUp()
        self.router = self.h.start_router()
        self.sim = self.h.start_sim(name="s", router=self.router, register_interval_secs=3600)
        wait_until(lambda: self.router.selectable_urls() == [self.sim.url], 10, what="the sim selectable")

    def serve(self, n):
        for i in range(n):
            r = self.router.chat(fdharness.chat_body("q %d" % i, stream=i % 2 == 1))
            self.assertEqual(r.status, 200, r)

    def test_every_dashboard_metric_exists(self):
        self.serve(2)
        names = {k[0] for k in scrape(self.router)}
        wanted = dashboard_metrics()
        self.assertGreater(len(wanted), 10)
        self.assertEqual(sorted(wanted - names), [], "queried by the dashboard, absent from /metrics")

    def test_build_info_and_prefixed_cache_counters(self):
        s = scrape(self.router)
        info = [k for k in s if k[0] == "fd_router_build_info"]
        self.assertEqual(len(info), 1, info)
        self.assertRegex(info[0][1], r'version="[^"]+",build="[0-9a-f]{12}",layout="\d+"')
        for name in ("router_cache_hit_total", "router_cache_request_total"):
            self.assertIn((name, ""), s)
            self.assertEqual(s[(name, "")], s[("fd_" + name, "")])

    def check_histograms(self, n):
        """n chat requests and one /v1/completions request were answered, in all."""
        s = scrape(self.router)
        self.assertEqual(s[("fd_router_requests_total", '{outcome="ok"}')], n + 1, "requests counted, every DP")
        for name in ("fd_router_time_to_first_byte_seconds", "fd_router_request_duration_seconds"):
            for route, want in (("/v1/chat/completions", n), ("/v1/completions", 1)):
                buckets, count = histogram(s, name, self.sim.url, route)
                self.assertEqual(count, want, "%s %s" % (name, route))
                self.assertEqual(buckets[-1], (float("inf"), want), name)
                values = [v for _, v in buckets]
                self.assertEqual(values, sorted(values), "%s buckets are cumulative" % name)

    def test_counters_survive_an_upgrade_and_a_data_plane_kill_9(self):
        r = self.router.post("/v1/completions", {"model": "default", "prompt": "hello"})
        self.assertEqual(r.status, 200, r)
        self.serve(4)
        self.check_histograms(4)
        rc, doc, err = upgrade(self.router)
        self.assertEqual(rc, 0, err)
        self.check_histograms(4)
        self.serve(1)
        old = self.router.serving_dp()
        fdharness.kill_pid(old, signal.SIGKILL, expect="fd-router-dp")
        wait_until(lambda: self.router.serving_dp() not in (None, old), 10, what="a new data plane serving")
        self.h.wait_router_ready(self.router)
        self.check_histograms(5)


if __name__ == "__main__":
    fdharness.main()
