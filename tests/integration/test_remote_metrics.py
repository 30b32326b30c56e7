"""tests/integration/test_remote_metrics.py - fd_remote_metrics_score end to end: the control plane
polls every instance's /metrics and publishes the numbers; the data plane routes to the lowest
running + waiting x waiting-weight, and falls back to its own in-flight counters for an instance
whose /metrics stops answering. Also the control plane's [stats] line.

Three fd-sims s0 < s1 < s2 in URL order. Their metrics are fixed with fd-sim's POST /sim/metrics,
so they do not follow the requests the test sends. s2 registers with a metrics_port that belongs
to a fourth fd-sim, m, which serves only as s2's metrics endpoint: killing m stops s2's /metrics
while s2 keeps serving completions and passing its health checks.
"""

import re
import signal

import fdharness
from fdharness import FdTestCase, post, wait_until

CHAT = "/v1/chat/completions"
POLL_SECS = 0.2
MAX_AGE_SECS = 1.0
STATS_SECS = 0.3
WAITING_WEIGHT = 10

STATS_RE = re.compile(r"^\[INFO\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d stats\.c:\d+: \[stats\] total_running=(\d+), "
                      r"workers: \[(.*)\], cache_hit_rate=(\d+\.\d\d)% \(hits=(\d+)/total=(\d+)\)$")


def set_metrics(port, running, waiting, blocks=1000):
    r = post(port, "/sim/metrics", {"num_requests_running": running, "num_requests_waiting": waiting,
                                    "available_gpu_block_num": blocks}, timeout=5)
    assert r.status == 200, r


class RemoteMetricsTest(FdTestCase):
    def setUp(self):
        super().setUp()
        self.holds = []
        self.addCleanup(self.release_all)

    def start(self, policy="fd_remote_metrics_score", timeout_secs=1):
        self.router = self.h.start_router(config={
            "scheduler": {"policy": policy, "waiting-weight": WAITING_WEIGHT, "stats-interval-secs": STATS_SECS},
            "manager": {"metrics-poll-interval-secs": POLL_SECS, "metrics-max-age-secs": MAX_AGE_SECS,
                        "health-check-timeout-secs": timeout_secs},
        })
        self.s0, self.s1, self.s2 = sorted((self.h.start_sim() for _ in range(3)), key=lambda s: s.url)
        self.m = self.h.start_sim(name="metrics-of-s2")
        self.router.register_sim(self.s0)
        self.router.register_sim(self.s1)
        self.router.register_sim(self.s2, metrics_port=self.m.port)
        wait_until(lambda: len(self.router.selectable_urls()) == 3, 10, what="three selectable instances")

    def release_all(self):
        for st in self.holds:
            st.close()
        self.holds = []

    def quick(self):
        r = self.router.chat(fdharness.chat_body("quick"))
        self.assertEqual(r.status, 200, r)
        return r.headers.get("x-sim-instance")

    def hold(self):
        st = fdharness.Stream(self.router.port, CHAT, fdharness.chat_body("hold", stream=True, sim_tokens=100000,
                                                                        sim_token_delay_ms=100))
        self.holds.append(st)
        self.assertEqual(st.status, 200)
        return st.headers.get("x-sim-instance")

    def wait_routed_to(self, sim, what):
        # three in a row: on equal scores the three instances are taken in turn, so one answer
        # from sim could be a tie's turn rather than sim's lower score
        wait_until(lambda: all(self.quick() == sim.name for _ in range(3)), 10,
                   what="requests to go to %s (%s)" % (sim.name, what))

    def router_log(self):
        return self.router.proc.stdout()

    def test_lowest_remote_score_wins_and_a_dead_metrics_endpoint_falls_back_to_local_counters(self):
        self.start()
        # scores with waiting-weight 10: s0 = 5, s1 = 0 + 1 x 10 = 10, s2 = 2 (s1 would win with weight 1)
        set_metrics(self.s0.port, 5, 0)
        set_metrics(self.s1.port, 0, 1)
        set_metrics(self.m.port, 2, 0)
        # locally every instance is idle between these requests: request_num would always pick s0
        self.wait_routed_to(self.s2, "remote scores 5, 10, 2")
        self.assertEqual([self.quick() for _ in range(5)], [self.s2.name] * 5)

        set_metrics(self.s0.port, 1, 0)
        self.wait_routed_to(self.s0, "remote scores 1, 10, 2")
        set_metrics(self.s0.port, 5, 0)
        self.wait_routed_to(self.s2, "remote scores 5, 10, 2 again")

        # four long requests: s2's score is its remote 2 plus what the router sent it since the
        # last poll (2, 3, 4, 5 against s0's 6), so all four go to s2, which now counts 4 locally
        set_metrics(self.s0.port, 6, 0)
        self.wait_routed_to(self.s2, "remote scores 6, 10, 2")
        for _ in range(4):
            self.assertEqual(self.hold(), self.s2.name)
        wait_until(lambda: self.router.inflight()[self.s2.url] == 4, 5, what="s2 to count 4 in-flight requests")
        set_metrics(self.s0.port, 3, 0)
        self.wait_routed_to(self.s2, "remote metrics still decide: 3, 10, 2 (+0 since the poll)")

        self.m.proc.kill()
        self.m.proc.popen.wait(fdharness.scaled(5))
        # s2 falls back to its local count, 4 > s0's remote 3
        self.wait_routed_to(self.s0, "s2 on its local count 4, s0 remote 3")
        self.assertEqual([self.quick() for _ in range(3)], [self.s0.name] * 3)
        self.assertEqual(self.router.selectable_urls(), sorted([self.s0.url, self.s1.url, self.s2.url]),
                         "a dead metrics endpoint does not make an instance unhealthy")

        warn = "GetRemoteMetrics failed for %s, falling back to local counter: " % self.s2.url
        wait_until(lambda: warn in self.router_log(), 5, what="the WARN about s2's metrics")
        # a streak is logged once: let several more polls fail (two [stats] lines span >= 3 polls)
        stats_before = self.router_log().count("[stats] ")
        wait_until(lambda: self.router_log().count("[stats] ") >= stats_before + 2, 5, what="two more [stats] lines")
        self.assertEqual(self.router_log().count(warn), 1, "one WARN per failure streak")
        for other in (self.s0, self.s1):
            self.assertNotIn("GetRemoteMetrics failed for %s," % other.url, self.router_log())

    def test_an_instance_that_looked_idle_at_the_last_poll_does_not_draw_every_request(self):
        """The Go router's herd: between two polls, every request went to the instance that looked
        idle at the last one. Here the sims report their real in-flight counts; s1 and s2 each
        run 2 requests sent to them directly, s0 none, so a poll shows 0, 2, 2. Six long requests
        then arrive faster than a poll: s0 takes two (0 + what the router sent it since the poll),
        after that the three are level and take turns."""
        direct = []
        self.addCleanup(lambda: [st.close() for st in direct])
        self.router = self.h.start_router(config={
            "scheduler": {"policy": "fd_remote_metrics_score"},
            "manager": {"metrics-poll-interval-secs": 5, "metrics-max-age-secs": 30},
        })
        sims = sorted((self.h.start_sim() for _ in range(3)), key=lambda s: s.url)
        for s in sims[1:]:
            for _ in range(2):
                st = fdharness.Stream(s.port, CHAT, fdharness.chat_body("direct", stream=True, sim_tokens=100000,
                                                                     sim_token_delay_ms=100))
                self.assertEqual(st.status, 200)
                direct.append(st)
        for s in sims:
            self.router.register_sim(s)
        wait_until(lambda: len(self.router.selectable_urls()) == 3, 10, what="three selectable instances")
        wait_until(lambda: all(self.quick() == sims[0].name for _ in range(3)), 10,
                   what="the first poll (0, 2, 2) to send quick requests to the idle s0")
        got = [self.hold() for _ in range(6)]
        self.assertLessEqual(got.count(sims[0].name), 4, "the herd: %s" % got)
        self.assertEqual(got[:2], [sims[0].name] * 2, got)

    def test_stale_metrics_of_a_hung_endpoint_fall_back_after_the_max_age(self):
        # the polls' timeout (the health-check timeout, 8 s) is far beyond the max age (1 s): the
        # fallback below comes from the age of the last numbers, not from a failed poll
        self.start(timeout_secs=8)
        set_metrics(self.s0.port, 5, 0)
        set_metrics(self.s1.port, 7, 0)
        set_metrics(self.m.port, 0, 0)
        self.wait_routed_to(self.s2, "remote scores 5, 7, 0")
        for _ in range(6):
            self.assertEqual(self.hold(), self.s2.name)
        self.assertEqual(self.quick(), self.s2.name, "remote metrics still decide")
        # SIGSTOP: the kernel still accepts m's connections, nothing answers, so polls hang
        self.m.proc.kill(signal.SIGSTOP)
        self.addCleanup(self.m.proc.kill, signal.SIGCONT)
        self.wait_routed_to(self.s0, "s2 on its local count 6 once its metrics are stale")
        self.assertNotIn("GetRemoteMetrics failed for %s" % self.s2.url, self.router_log(),
                         "no poll has failed yet: the numbers only aged")

    def test_stats_line(self):
        self.start(policy="request_num")
        held = [self.hold() for _ in range(3)]
        self.assertEqual(sorted(held), sorted([self.s0.name, self.s1.name, self.s2.name]))
        fourth = self.hold()  # request_num: all tied at 1, the fourth takes any one's turn
        counts = {s.url: 1 + (s.name == fourth) for s in (self.s0, self.s1, self.s2)}
        workers = ", ".join("%s: running=%d" % (u, counts[u]) for u in sorted(counts))

        def matching_line():
            for line in self.router_log().splitlines():
                m = STATS_RE.match(line)
                if m and m.group(1) == "4" and m.group(2) == workers:
                    return m
            return None

        m = wait_until(matching_line, 5, what=lambda: "a [stats] line with %s in:\n%s" % (
            workers, "\n".join(line for line in self.router_log().splitlines() if "[stats]" in line)[-2000:]))
        self.assertEqual(m.group(3, 4, 5), ("0.00", "0", "0"))


if __name__ == "__main__":
    fdharness.main()
