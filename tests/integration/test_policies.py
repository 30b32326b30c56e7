"""tests/integration/test_policies.py - where each scheduling policy sends requests on a known
load. Load is created by holding long streaming requests open; since a policy chooses among
registered instances, instances are registered one at a time so that each held request lands
where the test wants it whatever the policy (the only candidate, or the clearly least loaded).
Instances are named s0, s1, s2 in URL order. Ties do not follow that order (the Go router's
first-URL rule sends every tie to one instance): tied instances are taken in turn.
"""

import collections

import fdharness
from fdharness import FdTestCase, wait_until

CHAT = "/v1/chat/completions"


class PolicyTest(FdTestCase):
    def setup_policy(self, policy, n=3):
        self.router = self.h.start_router(config={"scheduler": {"policy": policy}})
        sims = sorted((self.h.start_sim() for _ in range(n)), key=lambda s: s.url)
        self.sims = sims
        self.holds = []
        self.addCleanup(self.release_all)
        return sims

    def hold(self, content="hold", expect=None):
        """Open a long streaming request; returns the name of the instance serving it."""
        st = fdharness.Stream(self.router.port, CHAT, fdharness.chat_body(content, stream=True, sim_tokens=100000,
                                                                        sim_token_delay_ms=100))
        self.holds.append(st)
        self.assertEqual(st.status, 200)
        name = st.headers.get("x-sim-instance")
        if expect is not None:
            self.assertEqual(name, self.name_of(expect), "held request landed on %s" % name)
        self.wait_load()
        return name

    def release_all(self):
        for st in self.holds:
            st.close()
        self.holds = []

    def wait_load(self):
        """Wait until the router counts exactly the held requests (quick ones finished)."""
        want = len(self.holds)
        wait_until(lambda: sum(self.router.inflight().values()) == want, 5,
                   what=lambda: "in-flight to equal %d held requests: %s" % (want, self.router.inflight()))

    def name_of(self, sim):
        return sim.name

    def register(self, sim):
        self.router.register_sim(sim)

    def quick(self, n=1, content="quick"):
        """n short requests one after the other; returns the instance names that answered."""
        out = []
        for _ in range(n):
            r = self.router.chat(fdharness.chat_body(content))
            self.assertEqual(r.status, 200, r)
            out.append(r.headers.get("x-sim-instance"))
            self.wait_load()
        return out

    def load_2_1_0(self):
        """Loads (held requests) s0=2, s1=1, s2=0, built by registering one instance at a time."""
        s0, s1, s2 = self.sims
        self.register(s0)
        self.hold(expect=s0)
        self.hold(expect=s0)
        self.register(s1)
        self.hold(expect=s1)
        self.register(s2)
        self.assertEqual(self.router.inflight(), {s0.url: 2, s1.url: 1, s2.url: 0})

    def check_least_loaded_ties_in_turn(self):
        s0, s1, s2 = self.sims
        self.load_2_1_0()
        self.assertEqual(self.quick(3), [self.name_of(s2)] * 3, "least loaded wins")
        self.hold(expect=s2)  # loads 2,1,1: tie between s1 and s2
        self.assertEqual(sorted(self.quick(4)), sorted([self.name_of(s1), self.name_of(s2)] * 2),
                         "the tied s1 and s2 in turn")
        self.hold(expect=s1)  # 2,2,1
        self.assertEqual(self.quick(), [self.name_of(s2)])
        self.hold(expect=s2)  # 2,2,2
        self.assertEqual(sorted(self.quick(6)), sorted([self.name_of(s) for s in self.sims] * 2), "all tied: in turn")

    def test_request_num_picks_least_loaded_ties_in_turn(self):
        self.setup_policy("request_num")
        self.check_least_loaded_ties_in_turn()

    def test_fd_metrics_score_behaves_like_request_num(self):
        self.setup_policy("fd_metrics_score")
        self.check_least_loaded_ties_in_turn()

    def test_sequential_requests_over_idle_instances_spread(self):
        """30 requests one after the other over 3 idle instances: every one is a tie, and each
        instance gets at least 8 (the Go router sent all 30 to the first URL). cache_aware gets
        distinct prompts shorter than a block, so no prefix is shared."""
        for policy in ("request_num", "process_tokens", "fd_metrics_score", "cache_aware"):
            with self.subTest(policy=policy):
                sims = self.setup_policy(policy)
                for s in sims:
                    self.register(s)
                counts = collections.Counter(self.quick(1, content="q%d" % k)[0] for k in range(30))
                self.assertEqual(set(counts), {self.name_of(s) for s in sims}, counts)
                self.assertTrue(all(c >= 8 for c in counts.values()), "%s: %s" % (policy, counts))
                self.router.proc.stop()

    def test_process_tokens_balances_by_prompt_size_in_mixed_mode(self):
        s0, s1, s2 = self.setup_policy("process_tokens")
        self.register(s0)
        self.hold("x" * 500, expect=s0)  # 1000 tokens (2 x code points)
        self.register(s1)
        self.hold("y" * 10, expect=s1)  # 20
        self.register(s2)
        self.hold("z" * 100, expect=s2)  # 200
        tokens = {i["url"]: i["tokens"] for i in self.router.registered_local()}
        self.assertEqual(tokens, {s0.url: 1000, s1.url: 20, s2.url: 200}, "the Go router's 2 x code points")
        # one request each: request_num would pick s0 here, process_tokens picks the fewest tokens
        self.assertEqual(self.quick(2), [self.name_of(s1)] * 2)
        self.hold("w" * 200, expect=s1)  # s1: 420
        self.assertEqual(self.quick(2), [self.name_of(s2)] * 2)

    def test_round_robin_cycles(self):
        sims = self.setup_policy("round_robin")
        for s in sims:
            self.register(s)
        seq = self.quick(12)
        self.assertEqual(set(seq), {self.name_of(s) for s in sims})
        for i in range(len(seq) - 3):
            self.assertEqual(seq[i], seq[i + 3], "period 3: %s" % seq)
        self.assertEqual(len(set(seq[:3])), 3, seq)

    def test_random_spreads(self):
        sims = self.setup_policy("random")
        for s in sims:
            self.register(s)
        counts = collections.Counter(self.quick(60))
        self.assertEqual(set(counts), {self.name_of(s) for s in sims})
        self.assertTrue(all(c >= 5 for c in counts.values()), counts)

    def test_power_of_two_spreads_and_avoids_the_most_loaded(self):
        s0, s1, s2 = self.setup_policy("power_of_two")
        self.load_2_1_0()
        counts = collections.Counter(self.quick(40))
        # every pair that contains s0 chooses the other one; (s1, s2) chooses s2
        self.assertNotIn(self.name_of(s0), counts, counts)
        self.assertEqual(set(counts), {self.name_of(s1), self.name_of(s2)}, counts)
        self.release_all()
        self.wait_load()
        counts = collections.Counter(self.quick(60))
        self.assertEqual(set(counts), {self.name_of(s) for s in self.sims}, "equal loads spread: %s" % counts)


if __name__ == "__main__":
    fdharness.main()
