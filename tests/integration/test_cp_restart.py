"""tests/integration/test_cp_restart.py - the control plane's own crashes and restarts.

  * A new control plane started while a data plane serves attaches the same segment, adopts the
    data plane and takes back the listening socket, keeps every registered instance (nobody
    re-registers), and resumes health checks and /metrics polling; the data plane served
    throughout (fail-static), a stream held across the restart ends whole, and the adopted data
    plane can be upgraded.
  * A control plane killed while it holds the writer lock: the next writer recovers the lock and
    the state is consistent (instances, views, routing, new registrations).
  * Both killed: a fresh start finds the segment and reuses it (layout matches), saying so; a
    segment of another layout version is refused unless --rebuild_shm, which rebuilds it.
"""

import json
import mmap
import os
import signal
import subprocess
import threading
import time

import fdharness
from fdharness import FdTestCase, post, wait_until

CHAT = "/v1/chat/completions"


def restart_cp(h, router, *extra):
    """Start a control plane with the same flags as the router's (its state derives from them);
    with extra flags, fd-router-cp itself (the launcher takes only the Go router's flags)."""
    argv = list(router.proc.argv)
    if extra:
        argv[0] = fdharness.binary("fd-router-cp")
    router.proc = h.spawn("cp-again", argv + list(extra))
    return router.proc


def cp_logs(router):
    return router.proc.stdout() + router.proc.stderr()


def metrics(router):
    out = {}
    for line in router.get("/metrics", timeout=5).text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class CpRestartTest(FdTestCase):
    def fleet(self, n=2, config=None):
        cfg = {"manager": {"health-failure-threshold": 1, "health-success-threshold": 1,
                           "metrics-poll-interval-secs": 0.2}}
        for k, v in (config or {}).items():
            cfg.setdefault(k, {}).update(v)
        router = self.h.start_router(config=cfg)
        sims = sorted((self.h.start_sim(name="s%d" % i, router=router, register_interval_secs=3600)
                       for i in range(n)), key=lambda s: s.url)
        wait_until(lambda: len(router.selectable_urls()) == n, 10, what="%d sims selectable" % n)
        return router, sims

    def kill_cp(self, router):
        router.proc.kill(signal.SIGKILL)
        router.proc.popen.wait(fdharness.scaled(5))

    def all_ok(self, router, n=8):
        for i in range(n):
            r = router.chat(fdharness.chat_body("q %d" % i, stream=i % 2 == 1))
            self.assertEqual(r.status, 200, r)

    def test_new_control_plane_adopts_the_serving_data_plane(self):
        router, sims = self.fleet()
        dp = router.serving_dp()
        held = fdharness.Stream(router.port, CHAT, fdharness.chat_body("held", stream=True, sim_tokens=40,
                                                                      sim_token_delay_ms=50))
        self.addCleanup(held.close)
        self.assertEqual(held.status, 200)

        self.kill_cp(router)
        # fail-static: the data plane routes on the last table, /metrics says how old the CP's beat is
        self.all_ok(router)
        wait_until(lambda: metrics(router)["fd_router_control_plane_heartbeat_age_seconds"] >= 0.5, 10,
                   what="the heartbeat age to grow while no control plane runs")
        self.assertIn("fd_router_table_age_seconds", metrics(router))

        restart_cp(self.h, router)
        wait_until(lambda: router.cp_status()["cp"]["dp_pid"] == dp, 10, what="the new control plane to adopt pid %d" % dp)
        cp = router.cp_status()["cp"]
        self.assertIs(cp["dp_adopted"], True)
        self.assertEqual(cp["pid"], router.proc.pid)
        logs = cp_logs(router)
        self.assertIn("REUSED (registry, views and counters kept)", logs)
        self.assertIn("Adopted the running data plane (pid %d)" % dp, logs)
        self.assertIn("Took over the listening socket of the adopted data plane (pid %d)" % dp, logs)
        self.assertEqual(router.serving_dp(), dp)
        self.assertLess(metrics(router)["fd_router_control_plane_heartbeat_age_seconds"], fdharness.scaled(5))

        # nothing re-registered, nothing lost; the held stream ends whole
        self.assertEqual(router.registered_urls(), [s.url for s in sims])
        for s in sims:
            self.assertEqual(s.stats()["register_ok"], 1)
        self.assertEqual(fdharness.parse_sse(held.read_all())[-1], "[DONE]")
        router.wait_inflight_zero()

        # health checks resume
        sims[1].set_health(False)
        wait_until(lambda: router.selectable_urls() == [sims[0].url], 10, what="s1 found unhealthy")
        sims[1].set_health(True)
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="s1 healthy again")

        # /metrics polling resumes
        r = post(sims[0].port, "/sim/metrics", {"num_requests_running": 7, "num_requests_waiting": 3,
                                                "available_gpu_block_num": 11}, timeout=5)
        self.assertEqual(r.status, 200, r)

        def polled():
            st = json.loads(router.fdctl("stats", "--json").stdout)
            m = [i for i in st["instances"] if i["url"] == sims[0].url][0]["remote_metrics"]
            return m and m["running"] == 7 and m["waiting"] == 3 and m["age_ms"] < fdharness.scaled(2000)

        wait_until(polled, 10, what="the new control plane's /metrics poll of s0")

        # registration goes to the new control plane, and the adopted data plane can be upgraded
        extra = self.h.start_sim(name="late")
        router.register_sim(extra)
        self.assertIn(extra.url, router.registered_urls())
        r = subprocess.run([fdharness.binary("fdctl"), "--port", str(router.port), "--control_socket",
                            router.control_socket, "--json", "upgrade", "--drain_secs", "10"],
                           capture_output=True, text=True, timeout=fdharness.scaled(60))
        self.assertEqual(r.returncode, 0, r.stderr)
        u = json.loads(r.stdout)
        router.seen_dp_pids.add(u["new_pid"])
        self.assertEqual((u["state"], u["old_pid"]), ("done", dp), u)
        self.assertIsNotNone(u["drained"], "the adopted data plane reported its drain")
        self.assertFalse(fdharness.pid_alive(dp))
        self.all_ok(router)

    def test_control_plane_killed_holding_the_writer_lock(self):
        router, sims = self.fleet(1)
        before = router.status()["shm"]["writer_lock_recovered"]
        stop = threading.Event()

        def storm(k):
            # registrations whose metadata alternates: each replaces the slot and republishes the
            # views, the longest stretch the CP spends under the writer lock
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    post(router.port, "/register", sims[0].register_payload(connector_port=1 + (n + k) % 2),
                         timeout=2)
                except Exception:  # noqa: BLE001 - the CP is stopped or dead half of the time
                    pass

        threads = [threading.Thread(target=storm, args=(k,), daemon=True) for k in range(3)]
        for t in threads:
            t.start()
        self.addCleanup(lambda: (stop.set(), [t.join(5) for t in threads]))

        # freeze the CP until it is caught inside the lock, then kill it there
        cp = router.cp_pid
        deadline = time.monotonic() + fdharness.scaled(60)
        caught = False
        tries = 0
        while not caught and time.monotonic() < deadline:
            tries += 1
            os.kill(cp, signal.SIGSTOP)
            try:
                caught = router.status()["shm"]["writer_lock_owner"] == cp
            finally:
                os.kill(cp, signal.SIGKILL if caught else signal.SIGCONT)
        self.assertTrue(caught, "the control plane was never caught holding the writer lock (%d tries)" % tries)
        router.proc.popen.wait(fdharness.scaled(5))
        stop.set()
        for t in threads:
            t.join(fdharness.scaled(10))
        self.assertEqual(router.status()["shm"]["writer_lock_owner"], cp, "the dead CP still owns the lock")
        self.all_ok(router, 4)  # readers never take the lock

        restart_cp(self.h, router)
        wait_until(lambda: router.cp_status()["cp"]["dp_pid"] == router.serving_dp(), 10,
                   what="the new control plane to run")
        st = router.status()
        self.assertEqual(st["shm"]["writer_lock_recovered"], before + 1, st["shm"])
        self.assertIsNone(st["shm"]["writer_lock_owner"])
        # consistent: the instance is there and selectable, routing works, writes work
        self.assertEqual(router.selectable_urls(), [sims[0].url])
        self.all_ok(router)
        extra = self.h.start_sim(name="after")
        router.register_sim(extra)
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="a new registration selectable")
        self.all_ok(router)
        router.wait_inflight_zero()

    def test_both_killed_then_reused_or_rebuilt(self):
        router, sims = self.fleet()
        streams = [fdharness.Stream(router.port, CHAT, fdharness.chat_body("h%d" % i, stream=True, sim_tokens=1000,
                                                                          sim_token_delay_ms=50)) for i in range(2)]
        self.addCleanup(lambda: [s.close() for s in streams])
        wait_until(lambda: sum(router.inflight().values()) == 2, 5, what="two requests in flight")
        dp = router.serving_dp()
        self.kill_cp(router)
        fdharness.kill_pid(dp, signal.SIGKILL, expect="fd-router-dp")
        wait_until(lambda: not fdharness.pid_alive(dp), 5, what="the data plane to die")

        restart_cp(self.h, router)
        self.h.wait_router_ready(router)
        self.assertIn("REUSED (registry, views and counters kept)", cp_logs(router))
        self.assertEqual(router.registered_urls(), [s.url for s in sims])
        for s in sims:
            self.assertEqual(s.stats()["register_ok"], 1, "%s re-registered" % s.name)
        router.wait_inflight_zero()  # the dead data plane's counts were released
        self.all_ok(router)

        # another configuration (splitwise now) and no data plane on the segment: rebuilt, and said
        first = router.proc
        router.proc.stop()
        router.shutdown()
        restart_cp(self.h, router, "--splitwise")
        self.h.wait_router_ready(router)
        self.assertIn("the configuration changed, so the segment was rebuilt", cp_logs(router))
        self.assertEqual(router.registered_urls(), [], "mixed instances do not survive into splitwise mode")
        router.proc.stop()
        router.shutdown()
        router.proc = first  # back to the first flags (mixed mode)

        # a segment of another layout version: refused, then rebuilt on request
        router.proc.stop()
        router.shutdown()
        path = "/dev/shm/" + router.shm_name.lstrip("/")
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 16) as m:
            m[8:12] = (999).to_bytes(4, "little")  # shm_header_t.layout_version
        p = restart_cp(self.h, router)
        self.assertEqual(p.popen.wait(fdharness.scaled(10)), 1)
        self.assertIn("incompatible (layout version differs)", cp_logs(router))
        self.assertIn("--rebuild_shm", cp_logs(router))
        restart_cp(self.h, router, "--rebuild_shm")
        self.h.wait_router_ready(router)
        self.assertIn("REBUILT (incompatible segment or changed configuration discarded)", cp_logs(router))
        self.assertEqual(router.registered_urls(), [])
        router.register_sim(sims[0])
        self.all_ok(router, 2)


if __name__ == "__main__":
    fdharness.main()
