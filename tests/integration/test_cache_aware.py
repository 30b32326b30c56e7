"""tests/integration/test_cache_aware.py - cache_aware end to end, in mixed mode, on three fd-sims.

What the acceptance list of the routing issue asks of a running router with the shipped defaults:
  * requests of K prefix groups (a long shared prefix per group, a different question each time)
    stay on one instance, and the groups spread over the instances, whether their first requests
    are held open together or sent one after the other;
  * a group whose instance has queued more prefill work than the group's prefix saves spreads to
    another instance, and settles on one again once the queue is gone;
  * two routers that share nothing place each group on the same instance, on an idle fleet and
    under load, once each has found through the instances' /metrics that another sends to them
    (the fleet verdict on GET /metrics: alone with only its own requests, shared with another's);
  * after `kill -9` of the data plane, the next request of a group still goes to its instance:
    the prefix tree lives in shared memory, not in the dead process;
  * the tree's counters show on GET /metrics.

How the tests know where a request went: fd-sim names itself in every response (the JSON's
sim_instance, and the x-sim-instance header that a held stream has before its first chunk).
Load is made by holding long streams open; a stream whose first token is delayed holds its prefill
charge (queued work), one past its first token only its decode slot. Every request waits until the
router's in-flight counts equal the streams held, so no finished request's count is still being
released when the next selection reads the loads.
"""

import http.client
import json
import random
import signal

import fdharness
from fdharness import FdTestCase, wait_until

CHAT = "/v1/chat/completions"
BLOCK = 4  # cache-block-size: a small block so short prompts still have many blocks
GROUPS = 5  # prefix groups: more than the instances, so some instances own two
# Groups of the one-at-a-time tests: a fair hash leaves one of 3 instances without any of k groups
# with probability 3 x (2/3)^k, 2 % for 12 groups and 2e-4 for 24 (the content bound tolerates a
# hash's own scatter: cache_aware.c, bounds())
SPREAD_GROUPS = 24


def words(rng, n):
    return " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))
                    for _ in range(n))


class Prompts:
    """Deterministic prompts: a ~240-character prefix per group (its first block is the group's
    number, so no two groups share even one block), then a fresh question each time (~30
    characters, so a repeated prefix matches about 85 % of the prompt's blocks)."""

    def __init__(self, seed=7):
        self.rng = random.Random(seed)
        self.prefixes = []
        self.asked = 0

    def prefix(self, g):
        while len(self.prefixes) <= g:
            self.prefixes.append("%03d: %s." % (len(self.prefixes), words(self.rng, 36)))
        return self.prefixes[g]

    def ask(self, g):
        self.asked += 1
        return "%s Question %d: %s?" % (self.prefix(g), self.asked, words(self.rng, 4))


def parse_metrics(text):
    """{(name, frozenset of label pairs): value} of a Prometheus text body."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        pairs = frozenset(tuple(p.split("=", 1)) for p in labels.rstrip("}").replace('"', "").split(",") if p)
        out[(name, pairs)] = float(value)
    return out


class CacheAwareTest(FdTestCase):
    def start(self, manager=None, **scheduler):
        """A router with cache_aware and three registered sims, named s0, s1, s2 in URL order
        (ties no longer follow it: tied instances are taken in turn)."""
        cfg = {"policy": "cache_aware", "cache-block-size": BLOCK}
        cfg.update(scheduler)
        self.router = self.h.start_router(config={"scheduler": cfg, "manager": manager or {}})
        started = sorted((self.h.start_sim(name="sim%d" % i, tokens=2) for i in range(3)), key=lambda s: s.url)
        self.sims = started
        self.by_name = {s.name: "s%d" % i for i, s in enumerate(started)}
        for s in started:
            self.router.register_sim(s)
        wait_until(lambda: len(self.router.selectable_urls()) == 3, 10, what="three sims selectable")
        self.prompts = Prompts()
        self.holds = []
        self.queued = []  # requests sent whose answer has not started (http.client connections)
        self.addCleanup(self.release)

    def name(self, sim_instance):
        """s0/s1/s2 (URL order) for the --name an fd-sim answers with."""
        return self.by_name[sim_instance]

    def wait_load(self):
        want = len(self.holds) + len(self.queued)
        wait_until(lambda: sum(self.router.inflight().values()) == want, 5,
                   what=lambda: "in-flight to equal the %d held streams: %s" % (want, self.router.inflight()))

    def loads(self):
        """{s0: n, ...} in-flight per instance as the router counts them."""
        by_url = self.router.inflight()
        return {"s%d" % i: by_url[s.url] for i, s in enumerate(self.sims)}

    def hold(self, g):
        """Open a long stream of group g; returns the instance serving it."""
        body = fdharness.chat_body(self.prompts.ask(g), stream=True, sim_tokens=100000, sim_token_delay_ms=100,
                                   session_id="group-%d" % g)
        st = fdharness.Stream(self.router.port, CHAT, body)
        self.holds.append(st)
        self.assertEqual(st.status, 200)
        self.wait_load()
        return self.name(st.headers["x-sim-instance"])

    def release(self):
        for st in self.holds:
            st.close()
        for conn in self.queued:
            conn.close()
        self.holds = []
        self.queued = []

    def release_and_settle(self):
        self.release()
        self.router.wait_inflight_zero()

    def ask(self, g, **extra):
        """One short request of group g; returns the instance that answered."""
        body = fdharness.chat_body(self.prompts.ask(g), session_id="group-%d" % g, **extra)
        r = self.router.chat(body)
        self.assertEqual(r.status, 200, r)
        self.wait_load()
        return self.name(r.json()["sim_instance"])

    def tokens(self):
        """{s0: n, ...} estimated tokens in flight per instance."""
        by_url = {i["url"]: i["tokens"] for i in self.router.registered_local()}
        return {"s%d" % i: by_url[s.url] for i, s in enumerate(self.sims)}

    def seed_groups(self):
        """The first request of each group, held open. Returns {group: owner}."""
        return {g: self.hold(g) for g in range(GROUPS)}

    def cache_metrics(self):
        """The router's cache families from GET /metrics (fd_router_cache*, and the Go router's
        router_cache*; dataplane/metrics.c writes them): their absence fails, never skips."""
        r = self.router.get("/metrics")
        self.assertEqual(r.status, 200, r)
        samples = parse_metrics(r.text())
        cache = {k: v for k, v in samples.items() if k[0].startswith(("fd_router_cache", "router_cache"))}
        self.assertTrue(cache, "GET /metrics has no fd_router_cache* / router_cache* family")
        return cache

    def metric(self, cache, name, **labels):
        key = (name, frozenset(labels.items()))
        self.assertIn(key, cache, "%s%s missing from /metrics; cache families: %s" % (name, labels, sorted(cache)))
        return cache[key]

    # -----------------------------------------------------------------------------------------

    def test_groups_stick_to_one_instance_and_spread(self):
        self.start()
        owners = self.seed_groups()
        self.assertGreaterEqual(len(set(owners.values())), 2, "groups spread: %s" % owners)
        # with the groups' first requests still held, every further request of a group goes to its instance
        for rnd in range(2):
            for g in range(GROUPS):
                self.assertEqual(self.ask(g), owners[g], "round %d, group %d, loads %s" % (rnd, g, self.loads()))
        # and with no load at all
        self.release_and_settle()
        for g in range(GROUPS):
            self.assertEqual(self.ask(g), owners[g], "group %d with every instance idle" % g)

    def test_groups_sent_one_after_the_other_stick_and_use_every_instance(self):
        """SPREAD_GROUPS groups, one request at a time (every instance idle at each decision): new
        prefixes are placed by their hash within the content bound, so all three instances get
        groups, and every later request of a group finds it where it was placed."""
        self.start()
        owners = {g: self.ask(g) for g in range(SPREAD_GROUPS)}
        self.assertEqual(set(owners.values()), {"s0", "s1", "s2"}, owners)
        for rnd in range(2):
            for g in range(SPREAD_GROUPS):
                self.assertEqual(self.ask(g), owners[g], "round %d, group %d" % (rnd, g))

    def test_two_routers_that_share_nothing_place_groups_alike(self):
        self.start()
        other = self.second_router()
        # every decision with every instance idle (the answer's counts released)
        placed, split = self.place_through_both(other, lambda router: router.wait_inflight_zero())
        self.assertLessEqual(len(split), 1, "groups on more than one instance: %s" % split)
        self.assertEqual(set().union(*placed.values()), {"s0", "s1", "s2"}, placed)

    def second_router(self, manager=None):
        other = self.h.start_router(config={"scheduler": {"policy": "cache_aware", "cache-block-size": BLOCK},
                                            "manager": manager or {}})
        for s in self.sims:
            other.register_sim(s)
        wait_until(lambda: len(other.selectable_urls()) == 3, 10, what="three sims selectable on the second router")
        return other

    def place_through_both(self, other, settled):
        """SPREAD_GROUPS groups, one request each in two rounds, alternating between this router and
        `other` so that each sees half of the groups first and the other half after the other
        router placed them: the second round is where a disagreement would show. settled(router)
        runs after each answer. Returns ({group: instances}, {group: instances} of the split)."""
        placed = {}
        for rnd in range(2):
            for g in range(SPREAD_GROUPS):
                router = self.router if (g + rnd) % 2 == 0 else other
                r = router.chat(fdharness.chat_body(self.prompts.ask(g)))
                self.assertEqual(r.status, 200, r)
                settled(router)
                placed.setdefault(g, set()).add(self.name(r.json()["sim_instance"]))
        return placed, {g: p for g, p in placed.items() if len(p) > 1}

    @staticmethod
    def verdict(router):
        """The fleet verdict labelled 1 in GET /metrics (None: no such family)."""
        samples = parse_metrics(router.get("/metrics").text())
        return next((dict(labels)["verdict"] for (name, labels), v in samples.items()
                     if name == "fd_router_fleet_verdict" and v == 1), None)

    def wait_verdict(self, router, want):
        wait_until(lambda: self.verdict(router) == want, 10,
                   what=lambda: "fleet verdict %s, got %s" % (want, self.verdict(router)))

    def test_two_routers_under_load_find_each_other_through_the_instances_and_agree(self):
        poll = {"metrics-poll-interval-secs": 0.2}
        self.start(manager=poll)
        other = self.second_router(manager=poll)
        self.assertEqual(self.verdict(self.router), "unknown", "no traffic yet")

        def hold(router, n):
            """n long streams through router, of prompts too short to weigh in the content sent"""
            streams = []
            for k in range(n):
                body = fdharness.chat_body("hold %d" % k, stream=True, sim_tokens=100000, sim_token_delay_ms=100)
                streams.append(fdharness.Stream(router.port, CHAT, body))
                self.addCleanup(streams[-1].close)
                self.assertEqual(streams[-1].status, 200)
            wait_until(lambda: sum(router.inflight().values()) == n, 5, what="%d streams in flight" % n)
            return streams

        hold(self.router, 2)
        self.wait_verdict(self.router, "alone")  # the instances report its two streams and nothing else
        self.wait_verdict(other, "shared")  # they report two that it did not send
        others = hold(other, 2)
        self.wait_verdict(self.router, "shared")

        def settled(router):
            wait_until(lambda: sum(router.inflight().values()) == 2, 5,
                       what=lambda: "in-flight back to the 2 held: %s" % router.inflight())

        # each router holds two streams of its own, so its loads differ from the other's: placing
        # new prefixes by its own loads (new-prefix-placement: load), they split 10 to 19 of the 24
        # groups in this test; by hash, the content bound of each (cache_aware.c, bounds()) sees
        # only what that router sent, and so still parts them on a few: 0 to 3 in 150 runs (0.25
        # a run). More than 6 (this test's shape in bench/bound_agreement.py's model): 2 runs in
        # 100,000 with each prefix's own threshold, 53 with the fixed one a clean-clone CI hit
        placed, split = self.place_through_both(other, settled)
        self.assertLessEqual(len(split), SPREAD_GROUPS // 4, "groups on more than one instance: %s" % split)
        self.assertEqual(set().union(*placed.values()), {"s0", "s1", "s2"}, placed)
        for st in others:
            st.close()
        self.wait_verdict(self.router, "alone")  # the other router's requests are gone

    def hold_queued(self, g):
        """A request of group g whose answer (head and first token) is 30 s away: its prefill
        charge stays queued. Returns the instance whose in-flight count it raised."""
        before = self.loads()
        body = fdharness.chat_body(self.prompts.ask(g), stream=True, sim_tokens=1, sim_first_token_delay_ms=30000)
        conn = http.client.HTTPConnection(fdharness.HOST, self.router.port, timeout=fdharness.scaled(60))
        conn.request("POST", CHAT, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        self.queued.append(conn)
        self.wait_load()
        after = self.loads()
        return next(n for n in after if after[n] > before[n])

    def test_a_group_spreads_when_its_queue_costs_more_than_its_prefix_saves_and_settles_when_it_cools(self):
        self.start()
        group = 0
        owner = self.ask(group)
        # each queued request of the group charges its uncached question (~25 units) + a block;
        # once its instance has more queued than another would have to prefill and copy (~500
        # units: about 18 of them), the next request goes elsewhere
        where = [self.hold_queued(group) for _ in range(24)]
        self.assertEqual(where[0], owner)
        self.assertTrue(any(w != owner for w in where), "the group never left its queued instance: %s" % where)
        self.release_and_settle()
        # cooled: the holders are equally cached and idle; the group settles on one of them
        settled = [self.ask(group) for _ in range(4)]
        self.assertEqual(len(set(settled)), 1, settled)
        self.assertIn(settled[0], set(where), "on an instance that holds the group")

    def test_tree_survives_data_plane_kill_9(self):
        self.start()
        owners = self.seed_groups()
        self.release_and_settle()
        old = self.router.serving_dp()
        self.assertIsNotNone(old)
        self.assertTrue(fdharness.kill_pid(old, signal.SIGKILL, expect="fd-router-dp"))
        new = wait_until(lambda: (lambda p: p if p and p != old else None)(self.router.serving_dp()), 10,
                         what="a new data plane serving")
        self.assertNotEqual(new, old)
        wait_until(lambda: self.router.get("/health", timeout=2).status == 200, 5, what="/health after the restart")
        self.assertFalse(fdharness.pid_alive(old))

        # every group keeps its instance because the new data plane found the tree as the dead
        # one left it (a lost tree would place every group anew, by content as well as hash)
        for g in range(GROUPS):
            self.assertEqual(self.ask(g), owners[g], "group %d after the data plane was killed" % g)

    def test_cache_counters_in_metrics(self):
        self.start()
        self.cache_metrics()  # the families exist before any decision
        owners = self.seed_groups()
        for g in range(GROUPS):
            self.assertEqual(self.ask(g), owners[g])
        self.release_and_settle()
        empty = self.router.chat(fdharness.chat_body(""))
        self.assertEqual(empty.status, 200, empty)
        self.wait_load()

        cache = self.cache_metrics()
        scored = 2 * GROUPS
        self.assertEqual(self.metric(cache, "fd_router_cache_decisions_total", branch="cache_scored"), scored)
        self.assertEqual(self.metric(cache, "fd_router_cache_decisions_total", branch="fallback_no_prompt"), 1)
        self.assertEqual(self.metric(cache, "fd_router_cache_decisions_total", branch="fallback_imbalance"), 0)
        self.assertEqual(self.metric(cache, "fd_router_cache_prefix_hits_total"), GROUPS,
                         "every group's second request matched its prefix, the first ones nothing")
        # FastDeploy's session counters: every request carried its group's session_id, and
        # each session's second request chose the instance of its first
        self.assertEqual(self.metric(cache, "router_cache_request_total"), scored)
        self.assertEqual(self.metric(cache, "router_cache_hit_total"), GROUPS)
        self.assertGreater(self.metric(cache, "fd_router_cache_nodes", state="reachable"), 0)
        self.assertGreater(self.metric(cache, "fd_router_cache_capacity_nodes"), 0)


if __name__ == "__main__":
    fdharness.main()
