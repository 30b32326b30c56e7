"""tests/integration/test_cp_protocol_errors.py - the control plane's own requests to an instance
(health checks, GET /metrics and GET /v1/models polls) that get an answer breaking HTTP/1.1 fail
that request only: the control plane keeps its pid, the answer is counted on the instance in the
same /metrics series as the data plane's (fd_router_instance_upstream_protocol_errors_total), and
it is logged at most once a second per instance, not once per probe. An answer that is merely cut
short (a transport failure) fails the probe but is not counted.
"""

import time

import fdharness
from fdharness import HOST, FdTestCase, wait_until
from test_hostile_instance import BAD_ANSWERS, NOT_FOUND, OK_HEALTH, Hostile, protocol_errors

FAST = 0.05  # seconds between probes: many probes within the log's one-second window

BAD = BAD_ANSWERS["cl_negative"]


class CpProtocolErrorTest(FdTestCase):
    def start(self, manager):
        hostile = Hostile()
        self.addCleanup(hostile.close)
        # a failing instance is never removed during the test: its probes go on
        config = {"manager": dict({"unhealthy-removal-secs": 3600}, **manager)}
        router = self.h.start_router(config=config)
        r = router.register({"role": "mixed", "host_ip": HOST, "port": hostile.port})
        self.assertEqual(r.status, 200, r)
        wait_until(lambda: len(router.selectable_urls()) == 1, 10, what="the hostile instance selectable")
        return hostile, router, "http://%s:%d" % (HOST, hostile.port)

    def cp_lines(self, router, job, url):
        return [l for l in router.proc.stdout().splitlines() if "%s of %s broke HTTP/1.1" % (job, url) in l]

    def hits_after(self, hostile, path, n):
        """Wait until `path` was requested n more times (the probes of the answer set now)."""
        start = hostile.hits.get(path, 0)
        wait_until(lambda: hostile.hits.get(path, 0) >= start + n, 10, what="%d more %s" % (n, path))

    def check_counted(self, hostile, router, url, attr, path, job):
        """Set the answer to `path` (Hostile's attribute `attr`) to one that breaks HTTP/1.1."""
        cp = router.cp_pid
        before = protocol_errors(router, url)
        t0 = time.monotonic()
        setattr(hostile, attr, BAD)
        wait_until(lambda: protocol_errors(router, url) >= before + 30, 15, what="30 protocol errors counted")
        elapsed = time.monotonic() - t0
        counted = protocol_errors(router, url) - before
        lines = self.cp_lines(router, job, url)
        self.assertGreaterEqual(len(lines), 1, "logged")
        self.assertLessEqual(len(lines), elapsed + 2, "at most one line a second: %s" % lines)
        self.assertLess(len(lines), counted, "not one line per probe")
        self.assertEqual(router.cp_pid, cp, "the control plane kept its pid")
        self.assertTrue(fdharness.pid_alive(cp), "the control plane is alive")

        # an answer cut short before its head is a failed probe, not a protocol error
        setattr(hostile, attr, BAD_ANSWERS["truncated_head"])
        self.hits_after(hostile, path, 3)
        settled = protocol_errors(router, url)
        self.hits_after(hostile, path, 10)
        self.assertEqual(protocol_errors(router, url), settled, "a truncated head is not counted")

    def test_health_check_answers_that_break_http(self):
        hostile, router, url = self.start({"health-check-interval-secs": FAST, "health-failure-threshold": 1000})
        self.assertEqual(protocol_errors(router, url), 0)
        self.check_counted(hostile, router, url, "health", b"/health", "health check")
        hostile.health = OK_HEALTH
        self.assertEqual(router.selectable_urls(), [url], "a failure threshold of 1000 kept it selectable")

    def test_metrics_and_models_polls_answers_that_break_http(self):
        hostile, router, url = self.start({"metrics-poll-interval-secs": FAST, "models-poll-interval-secs": FAST})
        self.assertEqual(protocol_errors(router, url), 0)
        self.check_counted(hostile, router, url, "metrics", b"/metrics", "GET /metrics")
        hostile.metrics = NOT_FOUND
        self.check_counted(hostile, router, url, "models", b"/v1/models", "GET /v1/models")
        self.assertEqual(router.selectable_urls(), [url], "its health checks still pass")


if __name__ == "__main__":
    fdharness.main()
