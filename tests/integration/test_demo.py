"""tests/integration/test_demo.py - tools/demo.sh as a newcomer runs it (the build dir under test,
no dependency install).

  * A busy port: a clear error naming it, exit 1, before anything is built or started.
  * A free port: progress lines, it waits until both instances serve, a request through it
    works, and on SIGTERM it stops everything it started, saying "demo stopped" once.
"""

import os
import signal
import socket
import subprocess
import tempfile

import fdharness
from fdharness import FdTestCase, wait_until

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEMO = os.path.join(ROOT, "tools", "demo.sh")


class DemoTest(FdTestCase):
    def run_demo(self, port):
        env = dict(os.environ, PORT=str(port), SKIP_SETUP="1",
                   BUILD_DIR=os.path.dirname(os.path.abspath(fdharness.BIN)))
        out = tempfile.NamedTemporaryFile(prefix="demo-", dir=self.h.tmpdir, delete=False)
        self.addCleanup(out.close)
        p = subprocess.Popen(["bash", DEMO], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(self.stop, p, port)
        return p, out.name

    def stop(self, p, port):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(fdharness.scaled(20))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        try:
            os.unlink("/dev/shm/fd-router-%d" % port)
        except OSError:
            pass

    def test_busy_port(self):
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind((fdharness.HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        p, log = self.run_demo(port)
        self.assertEqual(p.wait(fdharness.scaled(20)), 1)
        with open(log) as f:
            text = f.read()
        self.assertIn("port %d is already in use" % port, text)
        self.assertNotIn("building", text)

    def test_runs_and_stops_once(self):
        port = fdharness.free_port()
        p, log = self.run_demo(port)

        def text():
            with open(log) as f:
                return f.read()

        wait_until(lambda: p.poll() is None and "Ctrl-C to stop." in text() or p.poll() is not None, 300,
                   what="the demo to be ready")
        self.assertIsNone(p.poll(), text())
        self.assertIn("with 2 instances", text())
        self.assertIn("demo: waiting for the two simulated instances", text())
        r = fdharness.post(port, "/v1/chat/completions", fdharness.chat_body("hi"), 10)
        self.assertEqual(r.status, 200, r)
        p.send_signal(signal.SIGTERM)
        p.wait(fdharness.scaled(20))
        self.assertEqual(text().count("demo stopped"), 1, text())
        wait_until(lambda: not os.path.exists("/run/fd-router-%d.sock" % port), 10, what="the router gone")


if __name__ == "__main__":
    fdharness.main()
