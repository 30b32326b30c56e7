"""tests/integration/test_upgrade.py - hot upgrade of the data plane (`fdctl upgrade`, SIGHUP).

The acceptance test runs 10 upgrades in a row under a bounded load of streaming and non-streaming
requests on keep-alive connections (loadmix.py) and asks for zero failed requests (no socket
error, no non-2xx, no truncated or altered body), every old data plane gone, and every in-flight
count back to zero. The others cover what goes wrong: a new data plane that exits or never gets
ready (the old one keeps serving, fdctl exits 1), an upgrade asked for while one runs (409), a
stream cut at the drain deadline (reported), either data plane killed during the upgrade, the
SIGHUP path, and cache_aware's prefix tree, which must still send each group to its instance on
the first request after an upgrade and after a crash.
"""

import http.client
import json
import os
import signal
import stat
import subprocess
import time

import fdharness
import loadmix
from fdharness import FdTestCase, wait_until


def http_client(port):
    return http.client.HTTPConnection(fdharness.HOST, port, timeout=fdharness.scaled(10))


def fdctl_ctl(router, *args, timeout=60):
    argv = [fdharness.binary("fdctl"), "--port", str(router.port), "--control_socket", router.control_socket]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=fdharness.scaled(timeout))


def upgrade(router, *args, timeout=60):
    """`fdctl --json upgrade ARGS`: (exit status, the upgrade record or None, stderr)."""
    r = fdctl_ctl(router, "--json", "upgrade", *args, timeout=timeout)
    doc = json.loads(r.stdout) if r.stdout.strip() else None
    if doc and doc.get("new_pid"):
        router.seen_dp_pids.add(doc["new_pid"])
    return r.returncode, doc, r.stderr


class UpgradeTestBase(FdTestCase):
    def fleet(self, n=2, config=None):
        router = self.h.start_router(config=config)
        sims = [self.h.start_sim(name="s%d" % i, router=router, register_interval_secs=3600) for i in range(n)]
        wait_until(lambda: len(router.selectable_urls()) == n, 10, what="%d sims selectable" % n)
        return router, sims

    def script(self, name, body):
        """An executable shell script in the test's temp dir (a stand-in data-plane binary)."""
        path = os.path.join(self.h.tmpdir, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path

    def ok_requests(self, router, n=6):
        for i in range(n):
            r = router.chat(fdharness.chat_body("after %d" % i, stream=i % 2 == 0))
            self.assertEqual(r.status, 200, r)


class UpgradeUnderLoadTest(UpgradeTestBase):
    def test_ten_upgrades_under_load(self):
        router, _ = self.fleet()
        load = loadmix.LoadMix(router.port, workers=6, stream_tokens=20, stream_delay_ms=15, plain_tokens=4,
                               max_requests=100000, max_secs=fdharness.scaled(200), timeout=fdharness.scaled(30),
                               pause_ms=2)
        load.start()
        self.addCleanup(load.stop)
        wait_until(lambda: load.count() >= 30, 20, what="the load to get going")

        olds, reports = [], []
        for i in range(10):
            old = wait_until(router.serving_dp, 10, what="one serving data plane")
            before = load.count()
            rc, u, err = upgrade(router, "--drain_secs", str(int(fdharness.scaled(30))))
            self.assertEqual(rc, 0, "upgrade %d: %s %s" % (i, u, err))
            self.assertEqual(u["state"], "done", u)
            self.assertEqual(u["old_pid"], old, u)
            self.assertNotEqual(u["new_pid"], old, u)
            self.assertEqual(u["cut"], 0, u)
            self.assertIsNone(u["error"], u)
            self.assertFalse(fdharness.pid_alive(old), "old data plane %d still runs after upgrade %d" % (old, i))
            self.assertEqual(router.serving_dp(), u["new_pid"])
            olds.append(old)
            reports.append(u)
            # the next upgrade happens under load too: the new data plane must be serving it
            wait_until(lambda: load.count() >= before + 12, 20, what="requests served after upgrade %d" % i)

        self.assertEqual(load.stop(), [], "load threads did not stop")
        results = load.snapshot()
        failures = [r for r in results if r.error is not None]
        self.assertEqual([r.error for r in failures], [], "failed requests during 10 upgrades")
        streams = [r for r in results if r.kind == "stream"]
        self.assertGreater(len(streams), 20)
        self.assertGreater(len(results) - len(streams), 20)
        # the drains were real: requests were answered by old data planes while they drained
        self.assertGreater(sum(u["drained"] for u in reports), 0, reports)
        for pid in olds:
            self.assertFalse(fdharness.pid_alive(pid))
        router.wait_inflight_zero()
        self.assertEqual([i["tokens"] for i in router.registered_local()], [0, 0], "token counters back to zero")
        st = router.status()
        self.assertEqual([d["state"] for d in st["dp"]], ["serving"], st["dp"])
        cp = router.cp_status()
        self.assertEqual(cp["cp"]["dp_retiring"], [])
        self.assertEqual(cp["upgrade"]["id"], 10)


class UpgradeFailureTest(UpgradeTestBase):
    def test_new_data_plane_that_exits_or_never_serves(self):
        router, _ = self.fleet(1)
        old = router.serving_dp()

        rc, u, err = upgrade(router, "--dp_binary", self.script("exits", "exit 3"))
        self.assertEqual(rc, 1, err)
        self.assertEqual(u["state"], "failed", u)
        self.assertIn("exited with status 3 before it was ready", u["error"])
        self.assertIn("keeps serving", u["error"])
        self.assertEqual(router.serving_dp(), old)
        self.ok_requests(router)

        rc, u, err = upgrade(router, "--dp_binary", self.script("stuck", "exec sleep 600"), "--ready_timeout_secs", "1")
        self.assertEqual(rc, 1, err)
        self.assertIn("was not ready within 1000 ms", u["error"])
        stuck = u["new_pid"]
        wait_until(lambda: not fdharness.pid_alive(stuck), 5, what="the stuck data plane to be killed")
        self.assertEqual(router.serving_dp(), old)
        self.ok_requests(router)

        # text output goes to stderr with the reason; a binary that cannot run is refused up front
        r = fdctl_ctl(router, "upgrade", "--dp_binary", "/nonexistent/fd-router-dp")
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent/fd-router-dp", r.stderr)
        r = fdctl_ctl(router, "upgrade", "--dp_binary", self.script("exits2", "exit 4"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAILED", r.stderr)
        self.assertIn("exited with status 4", r.stderr)
        self.assertEqual(router.serving_dp(), old)
        self.assertEqual(router.cp_status()["cp"]["dp_pid"], old)

    def test_second_upgrade_while_one_drains_is_refused(self):
        router, _ = self.fleet(1)
        held = fdharness.Stream(router.port, "/v1/chat/completions",
                                fdharness.chat_body("held", stream=True, sim_tokens=30, sim_token_delay_ms=100))
        self.addCleanup(held.close)
        self.assertEqual(held.status, 200)
        first = subprocess.Popen([fdharness.binary("fdctl"), "--port", str(router.port), "--control_socket",
                                  router.control_socket, "--json", "upgrade", "--drain_secs", "60"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: first.poll() is None and first.kill())
        wait_until(lambda: (router.cp_status().get("upgrade") or {}).get("state") == "draining", 10,
                   what="the first upgrade to drain the held stream")
        r = fdctl_ctl(router, "upgrade")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already in progress", r.stderr)
        self.assertIn("HTTP 409", r.stderr)
        # the held stream finishes whole on the draining data plane, then the upgrade completes
        data = held.read_all()
        self.assertEqual(fdharness.parse_sse(data)[-1], "[DONE]")
        out, err = first.communicate(timeout=fdharness.scaled(30))
        self.assertEqual(first.returncode, 0, err)
        u = json.loads(out)
        router.seen_dp_pids.add(u["new_pid"])
        self.assertEqual((u["state"], u["cut"]), ("done", 0), u)
        self.assertGreaterEqual(u["drained"], 1, u)

    def test_stream_cut_at_drain_deadline_is_reported(self):
        router, _ = self.fleet(1)
        held = fdharness.Stream(router.port, "/v1/chat/completions",
                                fdharness.chat_body("long", stream=True, sim_tokens=100000, sim_token_delay_ms=50))
        self.addCleanup(held.close)
        self.assertEqual(held.status, 200)
        r = fdctl_ctl(router, "upgrade", "--drain_secs", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 cut at the drain deadline", r.stdout)
        with self.assertRaises(Exception):  # the client sees a broken chunked body, not a clean end
            held.read_all()
        router.wait_inflight_zero()
        self.ok_requests(router)

    def test_idle_keep_alive_connections_are_closed_promptly(self):
        router, _ = self.fleet(1)
        idle = [http_client(router.port) for _ in range(3)]
        for c in idle:  # one answered request each, then the connections stay open, idle
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            self.assertIsNotNone(c.sock, "the connection is kept alive")
        t0 = time.monotonic()
        rc, u, err = upgrade(router, "--drain_secs", "60")
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        self.assertEqual(u["idle_closed"], 3, u)
        self.assertEqual(u["cut"], 0, u)
        # well before h2o's own 10 s keep-alive timeout: the default idle grace is 1 s
        self.assertLess(took, fdharness.scaled(5), u)
        for c in idle:  # the server closed them cleanly: EOF, no reset
            self.assertEqual(c.sock.recv(1), b"")
            c.close()
        self.ok_requests(router)

    def test_old_data_plane_killed_while_the_new_one_starts(self):
        router, _ = self.fleet(1)
        old = router.serving_dp()
        slow = self.script("slow-dp", 'sleep 1\nexec "%s" "$@"' % fdharness.binary("fd-router-dp"))
        proc = subprocess.Popen([fdharness.binary("fdctl"), "--port", str(router.port), "--control_socket",
                                 router.control_socket, "--json", "upgrade", "--dp_binary", slow],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_until(lambda: (router.cp_status().get("upgrade") or {}).get("state") == "starting", 10,
                   what="the upgrade to start")
        fdharness.kill_pid(old, signal.SIGKILL, expect="fd-router-dp")
        out, err = proc.communicate(timeout=fdharness.scaled(30))
        self.assertEqual(proc.returncode, 0, err)
        u = json.loads(out)
        router.seen_dp_pids.add(u["new_pid"])
        self.assertEqual(u["state"], "done")
        self.assertIsNone(u["old_pid"], u)
        self.assertIn("pid %d" % old, u["note"])
        self.assertEqual(wait_until(router.serving_dp, 5), u["new_pid"])
        # the crashed DP was not restarted next to the new one
        self.assertEqual(router.cp_status()["cp"]["dp_restarts"], 0)
        self.ok_requests(router)
        router.wait_inflight_zero()

    def test_new_data_plane_killed_while_the_old_one_drains(self):
        router, _ = self.fleet(1)
        old = router.serving_dp()
        held = fdharness.Stream(router.port, "/v1/chat/completions",
                                fdharness.chat_body("held", stream=True, sim_tokens=20, sim_token_delay_ms=100))
        self.addCleanup(held.close)
        proc = subprocess.Popen([fdharness.binary("fdctl"), "--port", str(router.port), "--control_socket",
                                 router.control_socket, "--json", "upgrade", "--drain_secs", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        up = wait_until(lambda: (router.cp_status().get("upgrade") or {}).get("state") == "draining"
                        and router.cp_status()["upgrade"], 10, what="the old data plane to drain")
        new = up["new_pid"]
        router.seen_dp_pids.add(new)
        fdharness.kill_pid(new, signal.SIGKILL, expect="fd-router-dp")
        # the current data plane is restarted at once; the old one keeps draining its stream
        replacement = wait_until(lambda: router.cp_status()["cp"]["dp_pid"] not in (0, new)
                                 and router.cp_status()["cp"]["dp_pid"], 5, what="a restarted data plane")
        router.seen_dp_pids.add(replacement)
        self.assertEqual(fdharness.parse_sse(held.read_all())[-1], "[DONE]")
        out, err = proc.communicate(timeout=fdharness.scaled(30))
        self.assertEqual(proc.returncode, 0, err)
        u = json.loads(out)
        self.assertEqual((u["state"], u["old_pid"], u["cut"]), ("done", old, 0), u)
        wait_until(lambda: router.serving_dp() == replacement, 5, what="the restarted data plane to serve")
        self.ok_requests(router)
        router.wait_inflight_zero()

    def test_sighup_upgrades_to_the_configured_binary(self):
        router, _ = self.fleet(1)
        old = router.serving_dp()
        os.kill(router.cp_pid, signal.SIGHUP)
        u = wait_until(lambda: (router.cp_status().get("upgrade") or {}).get("state") == "done"
                       and router.cp_status()["upgrade"], 15, what="the SIGHUP upgrade to finish")
        router.seen_dp_pids.add(u["new_pid"])
        self.assertEqual(u["trigger"], "SIGHUP")
        self.assertEqual(u["old_pid"], old)
        self.assertEqual(os.path.realpath(u["binary"]), os.path.realpath(fdharness.binary("fd-router-dp")))
        self.assertFalse(fdharness.pid_alive(old))
        self.assertEqual(router.serving_dp(), u["new_pid"])
        self.ok_requests(router)


BLOCK = 4


def group_prompt(g, n):
    """A long prefix per group (its first block differs between groups), then a fresh question."""
    prefix = ("group%d " % g) + " ".join("w%d_%d" % (g, i) for i in range(40))
    return "%s. Question %d?" % (prefix, n)


class UpgradeKeepsPrefixTreeTest(UpgradeTestBase):
    def test_prefix_groups_keep_their_instance_after_upgrade_and_crash(self):
        router, sims = self.fleet(3, config={"scheduler": {"policy": "cache_aware", "cache-block-size": BLOCK}})
        urls = sorted(s.url for s in sims)
        asked = [0]

        def ask(g):
            asked[0] += 1
            router.wait_inflight_zero()
            r = router.chat(fdharness.chat_body(group_prompt(g, asked[0])))
            self.assertEqual(r.status, 200, r)
            name = r.json()["sim_instance"]
            return [s.url for s in sims if s.name == name][0]

        # seed: group g is first sent while only urls[g] is selectable, so its prefix is recorded there
        for g in range(3):
            for u in urls:
                if u != urls[g]:
                    self.assertEqual(fdctl_ctl(router, "drain", u).returncode, 0)
            wait_until(lambda: router.selectable_urls() == [urls[g]], 5, what="only %s selectable" % urls[g])
            self.assertEqual(ask(g), urls[g])
            for u in urls:
                self.assertEqual(fdctl_ctl(router, "undrain", u).returncode, 0)
            wait_until(lambda: len(router.selectable_urls()) == 3, 5, what="all selectable again")
        owners = {g: ask(g) for g in range(3)}
        self.assertEqual(owners, {g: urls[g] for g in range(3)}, "each group sticks to its instance")

        rc, u, err = upgrade(router, "--drain_secs", "10")
        self.assertEqual(rc, 0, err)
        self.assertEqual({g: ask(g) for g in range(3)}, owners, "first requests after the upgrade")

        dp = router.serving_dp()
        fdharness.kill_pid(dp, signal.SIGKILL, expect="fd-router-dp")
        wait_until(lambda: router.serving_dp() not in (None, dp), 5, what="a restarted data plane")
        self.assertEqual({g: ask(g) for g in range(3)}, owners, "first requests after the crash")


if __name__ == "__main__":
    fdharness.main()
