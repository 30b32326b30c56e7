"""tests/integration/test_models.py - routing by model: GET /v1/models is the union of the models
the selectable instances list (their own GET /v1/models, polled by the control plane); when the
fleet serves several models a request goes only to instances serving the one it names (both legs
in splitwise mode), a model nobody serves gets an OpenAI-style 404 naming it; a fleet of one model,
and instances that list no models, accept any name.
"""

import fdharness
from fdharness import FdTestCase, wait_until

FAST_POLL = {"manager": {"models-poll-interval-secs": 0.2}}
PD_ARGS = ["--transfer-protocol", "ipc,rdma", "--device-ids", "0", "--connector-port", "7100"]


def listed(router):
    r = router.get("/v1/models")
    assert r.status == 200, r
    doc = r.json()
    assert doc["object"] == "list", doc
    return sorted(m["id"] for m in doc["data"])


class ModelsTest(FdTestCase):
    def sims(self, router, models, role="mixed", extra=()):
        out = []
        for i, model in enumerate(models):
            args = list(extra) + (["--model", model] if model else [])
            out.append(self.h.start_sim(name="%s%d-%s" % (role, i, model or "none"), router=router, role=role,
                                        register_interval_secs=3600, extra=args))
        return out

    def wait_models_known(self, router, sims, models):
        """Until every instance's models are polled: one not polled yet accepts every model
        (dataplane/models.h), so a request sent before could rightly go to another model's instance."""
        want = {s.url: ([m] if m else None) for s, m in zip(sims, models)}
        wait_until(lambda: {i["url"]: i["models"] for i in router.registered_local()} == want, 10,
                   what="every instance's models polled")

    def chat_to(self, router, model):
        body = fdharness.chat_body("which instance") if model is None else fdharness.chat_body("x", model=model)
        if model is None:
            del body["model"]
        return router.chat(body)

    def counts(self, sims):
        """Completion requests each instance received (fd-sim counts them on arrival)."""
        return {s.name: s.stats()["requests"] for s in sims}

    def test_two_models_route_by_name_and_refuse_an_unknown_one(self):
        router = self.h.start_router(config=FAST_POLL)
        a1, a2, b = self.sims(router, ["model-a", "model-a", "model-b"])
        wait_until(lambda: listed(router) == ["model-a", "model-b"], 10, what="both models listed")
        self.wait_models_known(router, [a1, a2, b], ["model-a", "model-a", "model-b"])
        doc = router.get("/v1/models").json()
        for m in doc["data"]:
            self.assertEqual(m["object"], "model")
            self.assertEqual(m["owned_by"], "FastDeploy")
            self.assertIsInstance(m["created"], int)
        wait_until(lambda: len(router.selectable_urls()) == 3, 10, what="three instances selectable")
        before = self.counts([a1, a2, b])
        for _ in range(6):
            r = self.chat_to(router, "model-b")
            self.assertEqual(r.status, 200, r)
        for _ in range(6):
            r = self.chat_to(router, "model-a")
            self.assertEqual(r.status, 200, r)
        after = self.counts([a1, a2, b])
        self.assertEqual(after[b.name] - before[b.name], 6, (before, after))
        self.assertEqual(after[a1.name] + after[a2.name] - before[a1.name] - before[a2.name], 6, (before, after))

        r = self.chat_to(router, "model-c")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json(), {"error": {"message": "The model `model-c` does not exist.",
                                              "type": "invalid_request_error", "param": "model",
                                              "code": "model_not_found"}})
        r = router.post("/v1/completions", {"model": "model-c", "prompt": "x"})
        self.assertEqual(r.status, 404, r)
        # a request naming no model may go anywhere
        self.assertEqual(self.chat_to(router, None).status, 200)

    def test_a_fleet_of_one_model_accepts_any_name(self):
        router = self.h.start_router(config=FAST_POLL)
        self.sims(router, ["model-a", "model-a"])
        wait_until(lambda: listed(router) == ["model-a"], 10, what="the model listed")
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="two instances selectable")
        r = self.chat_to(router, "whatever-the-client-says")
        self.assertEqual(r.status, 200, r)

    def test_instances_that_list_no_models_accept_every_model(self):
        router = self.h.start_router(config=FAST_POLL)
        a, b, plain = self.sims(router, ["model-a", "model-b", None])
        wait_until(lambda: listed(router) == ["model-a", "model-b"], 10, what="both models listed")
        wait_until(lambda: len(router.selectable_urls()) == 3, 10, what="three instances selectable")
        wait_until(lambda: "lists no models" in router.proc.stdout(), 10, what="the plain instance polled")
        models = {i["url"]: i["models"] for i in router.registered_local()}  # fdctl registered --json
        self.assertEqual(models, {a.url: ["model-a"], b.url: ["model-b"], plain.url: None})
        before = self.counts([a, b, plain])
        for _ in range(4):
            r = self.chat_to(router, "model-c")  # only the instance that did not say can serve it
            self.assertEqual(r.status, 200, r)
        for _ in range(6):
            self.assertEqual(self.chat_to(router, "model-b").status, 200)
        after = self.counts([a, b, plain])
        self.assertGreaterEqual(after[plain.name] - before[plain.name], 4, (before, after))
        self.assertEqual(after[a.name], before[a.name], "model-a's instance got another model's requests")

    def test_both_pd_legs_go_to_instances_of_the_model(self):
        router = self.h.start_router(config=FAST_POLL, splitwise=True)
        pa, pb = self.sims(router, ["model-a", "model-b"], role="prefill", extra=PD_ARGS)
        da, db = self.sims(router, ["model-a", "model-b"], role="decode", extra=PD_ARGS)
        wait_until(lambda: listed(router) == ["model-a", "model-b"], 10, what="both models listed")
        wait_until(lambda: len(router.selectable_urls()) == 4, 10, what="four instances selectable")
        self.wait_models_known(router, [pa, pb, da, db], ["model-a", "model-b", "model-a", "model-b"])
        for model, p, d in (("model-a", pa, da), ("model-b", pb, db)):
            for _ in range(3):
                r = self.chat_to(router, model)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers["x-router-prefill-url"], p.url)
                self.assertEqual(r.headers["x-router-decode-url"], d.url)
        self.assertEqual(self.chat_to(router, "model-c").status, 404)


if __name__ == "__main__":
    fdharness.main()
