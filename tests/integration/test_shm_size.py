"""tests/integration/test_shm_size.py - a /dev/shm too small for the segment.

In a private mount namespace (unshare -m) with a 32 MiB tmpfs on /dev/shm, the router refuses to
start: the segment is reserved whole at creation, so the error names /dev/shm, the size it needs
and how to give it room, instead of a SIGBUS on the first write to a page tmpfs cannot supply.
With a tmpfs large enough it starts and serves. Skipped where mount namespaces are not allowed.
"""

import os
import re
import shutil
import subprocess
import unittest

import fdharness
from fdharness import FdTestCase, binary, free_port, wait_until


def can_unshare():
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs -o size=1m tmpfs /dev/shm"], capture_output=True, timeout=10)
    return r.returncode == 0


@unittest.skipUnless(can_unshare(), "needs unshare -m and tmpfs mounts (root)")
class SmallShmTest(FdTestCase):
    def start_in_namespace(self, size):
        """fd-router alone in a mount namespace whose /dev/shm is a `size` tmpfs (sh execs it)."""
        port = free_port()
        cfg = os.path.join(self.h.tmpdir, "config-%d.yaml" % port)
        with open(cfg, "w") as f:
            f.write("server:\n  listen: %s\n" % fdharness.HOST)
        argv = [binary("fd-router"), "--port", str(port), "--config_path", cfg,
                "--control_socket", os.path.join(self.h.tmpdir, "ctl-%d.sock" % port)]
        script = 'mount -t tmpfs -o size=%s tmpfs /dev/shm && exec "$@"' % size
        p = self.h.spawn("router-shm-" + size, ["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                                                 "sh"] + argv)
        return p, port

    def test_refuses_to_start_naming_dev_shm_and_the_size(self):
        p, _ = self.start_in_namespace("32m")
        try:
            rc = p.popen.wait(fdharness.scaled(10))
        except subprocess.TimeoutExpired:
            p.stop()  # SIGTERM first: the router then stops the data plane it started
            self.fail("fd-router started on a /dev/shm too small for its segment:\n" + p.logs())
        self.assertEqual(rc, 1, p.logs())
        logs = p.stdout() + p.stderr()
        m = re.search(r"needs (\d+) MiB in /dev/shm, (\d+) MiB are free", logs)
        self.assertIsNotNone(m, logs)
        self.assertGreater(int(m.group(1)), 32)
        self.assertLessEqual(int(m.group(2)), 32)
        self.assertIn("--shm-size", logs)

    def test_starts_when_it_fits(self):
        p, port = self.start_in_namespace("256m")
        wait_until(lambda: not p.alive() or fdharness.get(port, "/health", timeout=2).status == 200, 15,
                   what="fd-router in its namespace to serve /health")
        self.assertTrue(p.alive(), p.logs())
        p.stop()  # SIGTERM: the router stops its data plane; the tmpfs goes with the namespace
        self.assertEqual(p.popen.returncode, 0, p.logs())


if __name__ == "__main__":
    fdharness.main()
