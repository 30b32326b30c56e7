"""tests/integration/test_install.py - `cmake --install` lays out what the README says.

Installs the build under test into a temporary prefix: the four binaries in bin/, fd-sim in
libexec/fd-router/ (not on PATH), docs/, the dashboard, the sysusers.d entry and a unit with
StateDirectory, LogsDirectory and WorkingDirectory whose paths name the prefix; when
systemd-analyze is installed, `systemd-analyze verify` of an instance of the unit is clean.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import fdharness

BUILD = os.path.dirname(os.path.abspath(fdharness.BIN))  # FD_BIN is <build>/bin


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.prefix = tempfile.mkdtemp(prefix="fdinst-")
        self.addCleanup(shutil.rmtree, self.prefix, True)
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", self.prefix], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)

    def path(self, *p):
        return os.path.join(self.prefix, *p)

    def test_layout(self):
        self.assertEqual(sorted(os.listdir(self.path("bin"))), ["fd-router", "fd-router-cp", "fd-router-dp", "fdctl"])
        self.assertTrue(os.access(self.path("libexec", "fd-router", "fd-sim"), os.X_OK))
        for f in ("README.md", "docs/config.md", "docs/compat.md", "grafana/fd-router-dashboard.json",
                  "configs/config.example.yaml"):
            self.assertTrue(os.path.isfile(self.path("share", "fd-router", f)), f)
        self.assertTrue(os.path.isfile(self.path("lib", "sysusers.d", "fd-router.conf")))

    def test_unit(self):
        with open(self.path("lib", "systemd", "system", "fd-router@.service")) as f:
            unit = f.read()
        for key in ("StateDirectory=fd-router-%i", "LogsDirectory=fd-router-%i", "WorkingDirectory=%S/fd-router-%i",
                    "ExecStart=%s/bin/fd-router-cp" % self.prefix):
            self.assertIn(key, unit)
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not installed")
        d = tempfile.mkdtemp(prefix="fdunit-")
        self.addCleanup(shutil.rmtree, d, True)
        shutil.copy(self.path("lib", "systemd", "system", "fd-router@.service"), d)
        r = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "fd-router@9000.service")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))


if __name__ == "__main__":
    unittest.main()
