"""tests/integration/test_dockerfile.py - what deploy/Dockerfile says, checked without Docker (no
daemon runs here): the build stage's packages exist and its targets are the build's; the runtime
stage installs a package for every shared library the installed binaries need; every path it
copies or runs is in the install tree (`cmake --install --prefix /usr` with DESTDIR, as the build stage does);
the image's command (ENTRYPOINT + CMD) starts a router from that tree that serves and upgrades
(`fdctl upgrade`, the documented way to apply a config change); and the segment size the file
and the README give matches the real one and fits the documented --shm-size but not Docker's
default 64 MiB /dev/shm.
"""

import json
import os
import re
import shutil
import subprocess

import fdharness
from fdharness import FdTestCase, wait_until

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BUILD = os.path.dirname(os.path.abspath(fdharness.BIN))  # FD_BIN is <build>/bin
MIB = 1024 * 1024


def dockerfile():
    """The Dockerfile's instructions (continuation lines joined), its comment text, its stages."""
    with open(os.path.join(ROOT, "deploy", "Dockerfile")) as f:
        text = f.read()
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#")))
    instructions = [line.strip() for line in joined.splitlines() if line.strip()]
    stages = []
    for ins in instructions:
        if ins.startswith("FROM "):
            stages.append([])
        stages[-1].append(ins)
    return instructions, comments, stages


def apt_packages(stage):
    pkgs = []
    for ins in stage:
        m = re.search(r"apt-get install -y --no-install-recommends ([^&]+)", ins)
        if m:
            pkgs += m.group(1).split()
    return pkgs


class DockerfileTest(FdTestCase):
    def setUp(self):
        super().setUp()
        self.instructions, self.comments, self.stages = dockerfile()
        self.assertEqual(len(self.stages), 2, "a build stage and a runtime stage")
        self.staging = os.path.join(self.h.tmpdir, "staging")
        env = dict(os.environ, DESTDIR=self.staging)
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr"], capture_output=True, text=True,
                           timeout=120, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.prefix = os.path.join(self.staging, "usr")  # the build stage's CMAKE_INSTALL_PREFIX
        self.assertIn("-DCMAKE_INSTALL_PREFIX=/usr", " ".join(self.stages[0]))

    def staged(self, path):
        """An absolute path of the image, in the staging tree (the install prefix is /usr there)."""
        self.assertTrue(path.startswith("/usr/"), path)
        return os.path.join(self.prefix, path[len("/usr/"):])

    def test_build_stage(self):
        if shutil.which("apt-cache") is None:
            self.skipTest("apt-cache not installed")
        for pkg in apt_packages(self.stages[0]):
            r = subprocess.run(["apt-cache", "show", "--no-all-versions", pkg], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 0, "build package %s unknown to apt" % pkg)
        targets = re.search(r"--target ([\w\- ]+?)(?: &&|$)", " ".join(self.stages[0])).group(1).split()
        r = subprocess.run(["cmake", "--build", BUILD, "--target", "help"], capture_output=True, text=True,
                           timeout=60)
        for t in targets:
            self.assertRegex(r.stdout, r"\.\.\. %s\b" % re.escape(t), "cmake target %s" % t)

    def test_runtime_packages_cover_every_shared_library(self):
        if shutil.which("dpkg") is None or shutil.which("readelf") is None:
            self.skipTest("dpkg or readelf not installed")
        runtime = set(apt_packages(self.stages[1])) | {"libc6"}  # libc6 is in debian:12 itself
        for name in ("fd-router", "fd-router-cp", "fd-router-dp", "fdctl"):
            elf = subprocess.run(["readelf", "-d", self.staged("/usr/bin/" + name)], capture_output=True, text=True,
                                 timeout=30).stdout
            for lib in re.findall(r"Shared library: \[(.+?)\]", elf):
                if lib.startswith(("libasan.", "libubsan.")):
                    continue  # a sanitizer build under test; the image builds without (FD_SANITIZE off)
                path = subprocess.run(["sh", "-c", "ldconfig -p | awk '$1 == \"%s\" {print $NF; exit}'" % lib],
                                      capture_output=True, text=True, timeout=30).stdout.strip()
                self.assertTrue(path, "%s needs %s, which ldconfig does not know" % (name, lib))
                owner = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True,
                                       timeout=30)
                if owner.returncode != 0:
                    owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, timeout=30)
                pkg = owner.stdout.split(":")[0].strip()
                self.assertIn(pkg, runtime, "%s needs %s (package %s), missing from the runtime stage" %
                              (name, lib, pkg))

    def test_paths_and_the_documented_command(self):
        runtime = self.stages[1]
        self.assertIn("COPY --from=build /staging/ /", runtime)
        cp = [i for i in runtime if " cp " in i][0]
        src, dst = re.search(r"\bcp (\S+) (\S+)", cp).groups()
        self.assertTrue(os.path.isfile(self.staged(src)), src)
        self.assertEqual(dst, "/etc/fd-router/config.yaml")
        entry = json.loads([i for i in runtime if i.startswith("ENTRYPOINT ")][0][len("ENTRYPOINT "):])
        cmd = json.loads([i for i in runtime if i.startswith("CMD ")][0][len("CMD "):])
        self.assertTrue(os.access(self.staged(entry[0]), os.X_OK), entry[0])
        for doc_cmd in ("fdctl --port 9000 upgrade",):
            self.assertIn(doc_cmd, self.comments)

        # the image's command, from the install tree: the example config (listening on 127.0.0.1
        # only, as every test here does), another port and private state names
        with open(self.staged(src)) as f:
            example = f.read()
        config = os.path.join(self.h.tmpdir, "config.yaml")
        with open(config, "w") as f:
            f.write(re.sub(r'(?m)^(\s*listen:\s*)"0\.0\.0\.0"', r'\1"127.0.0.1"', example))
        port = fdharness.free_port()
        argv = [self.staged(entry[0])] + [str(port) if a == "9000" else (config if a == dst else a) for a in cmd]
        self.assertEqual(argv[1:], ["--port", str(port), "--config_path", config])
        shm = "/fd-router-it-docker-%d" % os.getpid()
        sock = os.path.join(self.h.tmpdir, "ctl.sock")
        self.h.shm_names.append(shm)
        proc = self.h.spawn("image-cmd", argv + ["--shm_name", shm, "--control_socket", sock], cwd=self.h.tmpdir)
        router = fdharness.Router(self.h, proc, port, shm, sock)
        self.h.routers.append(router)
        self.h.wait_router_ready(router)
        self.assertEqual(router.get("/health").status, 200)
        r = subprocess.run([self.staged("/usr/bin/fdctl"), "--port", str(port), "--control_socket", sock,
                            "upgrade"], capture_output=True, text=True, timeout=fdharness.scaled(60))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.staged("/usr/bin/fd-router-dp"), r.stdout, "the data plane of the image's tree")

        # the segment: about what the Dockerfile and the README say, inside --shm-size, over 64 MiB
        size = router.status()["shm"]["size"]
        said = float(re.search(r"segment of about (\d+) MiB", self.comments).group(1))
        self.assertLessEqual(abs(size / MIB - said), 2, "Dockerfile says about %g MiB, the segment has %.1f" %
                             (said, size / MIB))
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        self.assertIn("about %d MiB" % said, readme)
        shm_size = re.search(r"--shm-size=(\d+)m", self.comments).group(1)
        self.assertIn("--shm-size=%sm" % shm_size, readme)
        self.assertLess(size, int(shm_size) * MIB)
        self.assertGreater(size, 64 * MIB, "Docker's default /dev/shm would hold it: --shm-size not needed")


if __name__ == "__main__":
    fdharness.main()
