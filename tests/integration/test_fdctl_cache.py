"""tests/integration/test_fdctl_cache.py - `fdctl cache` (the shared prefix tree: size, what each
instance holds) and `fdctl explain --body FILE` (a dry run of the selection: candidates, matched
blocks, hit ratios, scores, the choice), which must change nothing in the router's state.
"""

import json
import os

import fdharness
from fdharness import FdTestCase, wait_until


class FdctlCacheTest(FdTestCase):
    def start(self, policy="cache_aware"):
        router = self.h.start_router(config={"scheduler": {"policy": policy, "cache-block-size": 4}})
        sims = [self.h.start_sim(name="s%d" % i, router=router, tokens=2) for i in range(2)]
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="two sims selectable")
        return router, sims

    def body_file(self, body):
        path = os.path.join(self.h.tmpdir, "body-%d.json" % len(os.listdir(self.h.tmpdir)))
        with open(path, "w") as f:
            json.dump(body, f)
        return path

    def explain(self, router, body):
        r = router.fdctl("explain", "--body", self.body_file(body), "--json")
        return json.loads(r.stdout)

    def test_cache_and_explain(self):
        router, sims = self.start()
        prompt = "a long shared system prompt about the weather in spring; " * 2
        r = router.chat(fdharness.chat_body(prompt + "q0"))
        self.assertEqual(r.status, 200)
        owner = next(s.url for s in sims if s.name == r.json()["sim_instance"])

        cache = json.loads(router.fdctl("cache", "--json").stdout)
        self.assertGreater(cache["tree"]["nodes"], 0)
        held = {i["url"]: i["nodes"] for i in cache["instances"]}
        self.assertGreater(held[owner], 0, cache)
        self.assertEqual(sum(held.values()), held[owner], "only the chosen instance holds the prefix")
        self.assertGreaterEqual(len(cache["top_prefixes"]), 1)
        self.assertEqual(cache["top_prefixes"][0]["instances"], [owner], "the prefix was sent to its owner")
        self.assertIn("prefix tree", router.fdctl("cache").stdout)

        before = json.loads(router.fdctl("cache", "--json").stdout)["tree"]
        ex = self.explain(router, fdharness.chat_body(prompt + "q1"))
        self.assertEqual(ex["policy"], "cache_aware")
        self.assertEqual(ex["branch"], "predicted_cost")
        self.assertEqual(ex["choice"], owner)
        hits = {c["url"]: c["hit_ratio"] for c in ex["candidates"]}
        self.assertGreater(hits[owner], 0)
        self.assertEqual(min(hits.values()), 0)
        self.assertGreater(ex["matched_blocks"], 0)
        by_url = {c["url"]: c for c in ex["candidates"]}
        self.assertGreater(by_url[owner]["cached"], 0)
        self.assertTrue(by_url[owner]["near_best"] and by_url[owner]["within_bounds"], by_url[owner])
        self.assertEqual(min(c["score"] for c in ex["candidates"]), by_url[owner]["score"], "the cheapest won")
        self.assertGreater(ex["prompt_units"], by_url[owner]["cached"])
        # the default, one router: by hash until the instances show it alone, then by load
        self.assertEqual(ex["new_prefix_placement"], "load" if ex["fleet"] == "alone" else "hash", ex["fleet"])
        self.assertTrue(0 < ex["reuse"] < 1, "one new prefix so far, then this hit: %s" % ex["reuse"])
        self.assertEqual(ex["order"], "longest cached, then rendezvous weight", "the prompt is mostly cached")
        self.assertGreater(ex["slack"], 0, "the slack that made the near-best set")
        after = json.loads(router.fdctl("cache", "--json").stdout)["tree"]
        self.assertEqual((before["inserts"], before["nodes"], before["decided_by_cache"]),
                         (after["inserts"], after["nodes"], after["decided_by_cache"]),
                         "explain changes nothing")
        text = router.fdctl("explain", "--body", self.body_file(fdharness.chat_body(prompt))).stdout
        self.assertIn("choice         " + owner, text)
        self.assertIn("near-best", text)
        self.assertIn("QUEUED", text)
        self.assertRegex(text, "new prefixes by (load|hash)")
        self.assertIn("order          longest cached", text)

    def test_explain_round_robin_does_not_take_a_turn(self):
        router, sims = self.start(policy="round_robin")
        body = fdharness.chat_body("x")
        first = self.explain(router, body)["choice"]
        self.assertEqual(self.explain(router, body)["choice"], first, "a dry run takes no turn")
        r = router.chat(body)
        self.assertEqual(next(s.url for s in sims if s.name == r.json()["sim_instance"]), first)
        self.assertNotEqual(self.explain(router, body)["choice"], first)

    def test_explain_errors(self):
        router, _ = self.start()
        bad = os.path.join(self.h.tmpdir, "bad.json")
        with open(bad, "w") as f:
            f.write("{not json")
        r = router.fdctl("explain", "--body", bad, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a JSON object", r.stderr)
        r = router.fdctl("explain", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("explain needs --body FILE", r.stderr)
        port = fdharness.free_port()
        r = self.h.fdctl("--port", str(port), "cache", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no fd-router on port %d" % port, r.stderr)


if __name__ == "__main__":
    fdharness.main()
