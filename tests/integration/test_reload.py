"""tests/integration/test_reload.py - config.yaml re-read at `fdctl upgrade` and SIGHUP, applied
through the new data plane: a changed policy and first-byte timeout are in force afterwards (fdctl
status, a slow answer the new timeout cuts) while the registry, drain flags and request counters are kept; an
invalid file fails the reload with its file:line error, a non-zero exit, and changes nothing; a
key that needs a restart keeps its running value and is named in a WARN; a restart with a changed
policy keeps the registry and drain flags.
"""

import json
import os
import signal
import subprocess

import fdharness
from fdharness import FdTestCase, wait_until

SLOW_MS = 1000  # an answer this late passes the default first-byte timeout, not a 0.2 s one


def config_path(router):
    argv = router.proc.argv
    return argv[argv.index("--config_path") + 1]


def rewrite(router, changes):
    """Rewrite the router's config.yaml with {(section, key): value} changed."""
    path = config_path(router)
    doc = {}
    section = None
    with open(path) as f:
        for line in f:
            if not line.startswith(" "):
                section = line.strip().rstrip(":")
                doc.setdefault(section, {})
            else:
                k, _, v = line.strip().partition(": ")
                doc[section][k] = json.loads(v)  # to_yaml writes JSON scalars
    for (section, key), value in changes.items():
        doc.setdefault(section, {})[key] = value
    with open(path, "w") as f:
        f.write(fdharness.to_yaml(doc))


def fdctl_upgrade(router, *args):
    argv = [fdharness.binary("fdctl"), "--port", str(router.port), "--control_socket", router.control_socket,
            "--json", "upgrade"] + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=fdharness.scaled(60))
    if r.stdout.strip():
        doc = json.loads(r.stdout)
        if doc.get("new_pid"):
            router.seen_dp_pids.add(doc["new_pid"])
    return r


def slow_chat(router):
    return router.chat(fdharness.chat_body("slow", sim_first_token_delay_ms=SLOW_MS))


class ReloadTest(FdTestCase):
    def setup_fleet(self):
        router = self.h.start_router(config={"scheduler": {"policy": "round_robin"}})
        a = self.h.start_sim(name="a", router=router, register_interval_secs=3600)
        b = self.h.start_sim(name="b", router=router, register_interval_secs=3600)
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="both instances selectable")
        router.fdctl("--control_socket", router.control_socket, "drain", b.url)
        wait_until(lambda: router.selectable_urls() == [a.url], 10, what="b drained")
        for _ in range(3):
            self.assertEqual(router.chat(fdharness.chat_body("hi")).status, 200)
        return router, a, b

    def requests_total(self, router):
        text = router.get("/metrics").text()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("fd_router_requests_total{"))

    def assert_kept(self, router, a, b, before_total):
        regs = {i["url"]: i for i in router.registered_local()}
        self.assertEqual(sorted(regs), sorted([a.url, b.url]), "registry kept")
        self.assertTrue(regs[b.url]["drained"], "drain flag kept")
        self.assertGreaterEqual(self.requests_total(router), before_total, "counters kept")

    def test_fdctl_upgrade_applies_a_changed_policy_and_timeout(self):
        router, a, b = self.setup_fleet()
        self.assertEqual(slow_chat(router).status, 200, "a slow answer within the default timeout")
        total = self.requests_total(router)
        old_dp = router.serving_dp()
        rewrite(router, {("scheduler", "policy"): "random", ("proxy", "first-byte-timeout-secs"): 0.2,
                           ("log", "level"): "debug"})
        r = fdctl_upgrade(router)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotEqual(router.serving_dp(), old_dp)
        self.assertEqual(router.status()["config"]["policy"], "random")
        self.assertEqual(slow_chat(router).status, 504, "the new data plane runs the new timeout")
        self.assertEqual(router.chat(fdharness.chat_body("hi")).status, 200)
        self.assert_kept(router, a, b, total)
        wait_until(lambda: "the configuration of" in router.proc.stdout(), 10, what="the reload logged")

    def test_an_invalid_file_fails_the_reload_and_changes_nothing(self):
        router, a, b = self.setup_fleet()
        old_dp = router.serving_dp()
        path = config_path(router)
        with open(path) as f:
            good = f.read()
        with open(path, "w") as f:
            f.write(good + "scheduler:\n  policy: no_such_policy\n")
        r = fdctl_upgrade(router)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%s:" % os.path.basename(path), r.stderr)
        self.assertRegex(r.stderr, r"%s:\d+" % os.path.basename(path).replace(".", r"\."))
        self.assertEqual(router.serving_dp(), old_dp, "no upgrade ran")
        self.assertEqual(router.status()["config"]["policy"], "round_robin")
        self.assertEqual(router.chat(fdharness.chat_body("hi")).status, 200)
        self.assert_kept(router, a, b, 0)

    def test_sighup_reloads_and_a_restart_only_key_is_kept_and_named(self):
        router, a, b = self.setup_fleet()
        old_dp = router.serving_dp()
        rewrite(router, {("scheduler", "policy"): "power_of_two", ("scheduler", "cache-block-size"): 16})
        os.kill(router.cp_pid, signal.SIGHUP)
        wait_until(lambda: router.serving_dp() not in (None, old_dp), 15, what="a new data plane after SIGHUP")
        wait_until(lambda: router.status()["config"]["policy"] == "power_of_two", 10, what="the new policy")
        log = router.proc.stdout() + router.proc.stderr()
        self.assertIn("scheduler.cache-block-size changed (64 -> 16) but needs a restart", log)
        self.assert_kept(router, a, b, 0)

    def test_a_restart_with_a_changed_policy_keeps_the_registry(self):
        router, a, b = self.setup_fleet()
        router.proc.stop()  # a clean stop: the data plane stops too, the segment stays
        router.shutdown()
        rewrite(router, {("scheduler", "policy"): "random"})
        router.proc = self.h.spawn("router-again", list(router.proc.argv))
        self.h.wait_router_ready(router)
        self.assertEqual(router.status()["config"]["policy"], "random")
        self.assertIn("the registry, drain flags, counters and prefix tree are kept", router.proc.stdout())
        self.assert_kept(router, a, b, 0)
        wait_until(lambda: router.selectable_urls() == [a.url], 10, what="a selectable again after its probe")
        self.assertEqual(router.chat(fdharness.chat_body("hi")).status, 200)


if __name__ == "__main__":
    fdharness.main()
