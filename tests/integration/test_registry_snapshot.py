"""tests/integration/test_registry_snapshot.py - a restart on a segment that must be rebuilt (a
segment of another layout version, i.e. a new build, started with --rebuild_shm) carries the
registry over from the control plane's registry snapshot: every instance, its drain flag, and
health decided again by a probe; a snapshot entry the current rules refuse is not carried over.
"""

import json
import mmap
import os

import fdharness
from fdharness import FdTestCase, wait_until


def snapshot_path(router):
    return os.path.join(os.path.dirname(router.control_socket), router.shm_name.lstrip("/") + ".registry.json")


class RegistrySnapshotTest(FdTestCase):
    def restart_rebuilt(self, router):
        router.proc.stop()  # clean stop: the data plane stops too, the snapshot is written
        router.shutdown()
        with open("/dev/shm/" + router.shm_name.lstrip("/"), "r+b") as f, mmap.mmap(f.fileno(), 16) as m:
            m[8:12] = (999).to_bytes(4, "little")  # shm_header_t.layout_version: another build's segment
        argv = [fdharness.binary("fd-router-cp")] + list(router.proc.argv[1:]) + ["--rebuild_shm"]
        router.proc = self.h.spawn("cp-rebuilt", argv)
        self.h.wait_router_ready(router)
        return router.proc.stdout() + router.proc.stderr()

    def test_rebuilt_segment_gets_the_registry_back(self):
        router = self.h.start_router()
        a = self.h.start_sim(name="a", router=router, register_interval_secs=3600)
        b = self.h.start_sim(name="b", router=router, register_interval_secs=3600)
        wait_until(lambda: len(router.selectable_urls()) == 2, 10, what="both selectable")
        router.fdctl("--control_socket", router.control_socket, "drain", b.url)

        def snapshot_says_drained():
            with open(snapshot_path(router)) as f:
                doc = json.load(f)
            return {"http://%s:%d" % (i["host_ip"], i["port"]): i["drained"] for i in doc["instances"]} == \
                {a.url: False, b.url: True}

        wait_until(snapshot_says_drained, 10, what="the snapshot to show b drained")
        log = self.restart_rebuilt(router)
        self.assertIn("REBUILT", log)
        self.assertIn("2 of 2 registered instance(s) carried over", log)
        regs = {i["url"]: i for i in router.registered_local()}
        self.assertEqual(sorted(regs), sorted([a.url, b.url]))
        self.assertTrue(regs[b.url]["drained"], "drain flag carried over")
        wait_until(lambda: router.selectable_urls() == [a.url], 10, what="a selectable after its probe")
        self.assertEqual(router.chat(fdharness.chat_body("hi")).status, 200)
        for s in (a, b):
            self.assertEqual(s.stats()["register_ok"], 1, "%s did not have to register again" % s.name)

    def test_an_entry_the_rules_refuse_is_not_carried_over(self):
        router = self.h.start_router()
        a = self.h.start_sim(name="a", router=router, register_interval_secs=3600)
        wait_until(lambda: router.selectable_urls() == [a.url], 10, what="a selectable")
        router.proc.stop()
        router.shutdown()
        path = snapshot_path(router)
        with open(path) as f:
            doc = json.load(f)
        doc["instances"].append({"role": "mixed", "host_ip": "127.0.0.1", "port": 70000})
        with open(path, "w") as f:
            json.dump(doc, f)
        log = self.restart_rebuilt(router)
        self.assertIn("1 of 2 registered instance(s) carried over", log)
        self.assertIn("invalid port", log)
        self.assertEqual([i["url"] for i in router.registered_local()], [a.url])


if __name__ == "__main__":
    fdharness.main()
