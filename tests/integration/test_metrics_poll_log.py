"""tests/integration/test_metrics_poll_log.py - failed /metrics polls are logged per instance
without flooding: the first failure of a streak at once, then (at most once a minute) a line
with how many polls failed since, and the streak's end with its count. With a poll every 50 ms,
an instance whose /metrics port is closed for a second writes one line, not twenty.
"""

import time

import fdharness
from fdharness import FdTestCase, wait_until

POLL_SECS = 0.05


class MetricsPollLogTest(FdTestCase):
    def test_a_failing_streak_is_logged_once_then_counted_at_its_end(self):
        router = self.h.start_router(config={"manager": {"metrics-poll-interval-secs": POLL_SECS}})
        sim = self.h.start_sim()
        metrics_port = fdharness.free_port()  # nothing listens there yet
        r = router.register_sim(sim, metrics_port=metrics_port)
        self.assertEqual(r.status, 200, r)

        def lines(what):
            log = router.proc.stdout() + router.proc.stderr()
            return [l for l in log.splitlines() if what in l and sim.url in l]

        wait_until(lambda: lines("GetRemoteMetrics failed for"), 10, what="the first failure logged")
        first = lines("GetRemoteMetrics failed for")[0]
        time.sleep(fdharness.scaled(20 * POLL_SECS))  # the span under test; the end line counts its polls
        self.assertEqual(lines("GetRemoteMetrics failed for"), [first], "one line for the whole streak so far")
        self.assertEqual(lines("still failing"), [], "the next line comes a minute later at the earliest")

        self.h.start_sim(name="metrics", port=metrics_port)  # /metrics answers from now on
        back = wait_until(lambda: lines("available again after"), 10, what="the end of the streak logged")
        failed = int(back[0].split("available again after ")[1].split()[0])
        self.assertGreaterEqual(failed, 20, back[0])


if __name__ == "__main__":
    fdharness.main()
