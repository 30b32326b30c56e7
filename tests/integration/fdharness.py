"""tests/integration/fdharness.py - shared machinery of fd-router's integration tests.

Each test_*.py file is run by CTest as its own process (env FD_BIN=<build>/bin). Tests start
real processes: fd-router (which execs fd-router-cp, which spawns fd-router-dp), fd-sim
instances, and fdctl. Everything here exists so that tests

  * can run in parallel: free ports come from binding port 0, and every router gets its own
    shared-memory name (/fd-router-it-<pid>-<n>) and control socket (in the test's temp dir);
  * never sleep in place of synchronisation: wait_until() polls a condition with a deadline;
  * never leak: every process a test started is killed by pid in the test's cleanup (the data
    planes too, whose pids come from `fdctl status --json` and the control plane's /status),
    the shared-memory segment and temp files are removed, and a watchdog kills everything and
    exits if the whole file overruns its time budget;
  * explain failures: the logs of every process the failed test started are printed.

Only 127.0.0.1 is used. Standard library only.
"""

import atexit
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("FD_BIN") or os.path.join(HERE, "..", "..", "build", "bin")
HOST = "127.0.0.1"


def _binary_has_asan(path):
    try:
        with open(path, "rb") as f:
            # the runtime is libasan.so (gcc links it dynamically): the binary itself carries
            # only the calls into it
            return b"__asan_init" in f.read()
    except OSError:
        return False


# Sanitizer builds run about 3x slower: every deadline below is multiplied by SCALE.
SCALE = float(os.environ.get("FD_IT_SCALE") or (3.0 if _binary_has_asan(os.path.join(BIN, "fd-sim")) else 1.0))
# Not scaled: CTest kills a file after 300 s, and the watchdog must act first to clean up.
FILE_BUDGET_SECS = float(os.environ.get("FD_IT_BUDGET_SECS", "280"))

_seq = itertools.count()
_all_pids = set()  # every process started by this file, for the watchdog and atexit
_all_routers = []  # every router started, for their data planes (not our children) and segments
_open_harnesses = []  # harnesses of tests still running, for the watchdog
_all_pids_lock = threading.Lock()


def layout_version():
    """SHM_LAYOUT_VERSION as the source tree defines it (what the built binaries use)."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "shm", "layout.h")) as f:
        for line in f:
            if line.startswith("#define SHM_LAYOUT_VERSION"):
                return int(line.split()[2].rstrip("uU"))
    raise AssertionError("SHM_LAYOUT_VERSION not found in shm/layout.h")


def binary(name):
    return os.path.join(BIN, name)


def scaled(secs):
    return secs * SCALE


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (bind port 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, interval=0.02, what=None):
    """Poll cond() until it returns a truthy value (returned), or fail after `timeout` seconds
    (scaled for sanitizer builds). Exceptions from cond count as "not yet"."""
    deadline = time.monotonic() + scaled(timeout)
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - "not ready yet" takes many forms
            last_exc = e
        if time.monotonic() >= deadline:
            if callable(what):
                what = what()
            msg = "timed out after %.1fs waiting for %s" % (scaled(timeout), what or getattr(cond, "__name__", "condition"))
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise AssertionError(msg)
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# processes


def _proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pid_alive(pid):
    """True if pid runs and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def kill_pid(pid, sig=signal.SIGKILL, expect=None):
    """Signal pid if it is alive and (when expect is given) its command line contains expect,
    so a recycled pid is never hit."""
    if not pid or pid <= 0 or not pid_alive(pid):
        return False
    if expect and expect not in _proc_cmdline(pid):
        return False
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


class Proc:
    """A process we started, with stdout/stderr in files of the test's temp dir."""

    def __init__(self, name, argv, tmpdir, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(tmpdir, "%s.out" % name)
        self.err_path = os.path.join(tmpdir, "%s.err" % name)
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                      env=env, close_fds=True, cwd=cwd)
        self.pid = self.popen.pid
        with _all_pids_lock:
            _all_pids.add(self.pid)

    def alive(self):
        return self.popen.poll() is None

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout=3.0):
        """SIGTERM, then SIGKILL if it has not exited within timeout; reaps it."""
        if self.alive():
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
        try:
            self.popen.wait(scaled(5))
        except subprocess.TimeoutExpired:
            pass
        self.close_files()

    def close_files(self):
        for f in (self._out, self._err):
            if not f.closed:
                f.close()

    def logs(self, limit=6000):
        def tail(s):
            return s if len(s) <= limit else "...(%d bytes cut)...\n%s" % (len(s) - limit, s[-limit:])

        return "----- %s (pid %d, exit %s): %s\n--- stdout\n%s\n--- stderr\n%s" % (
            self.name, self.pid, self.popen.poll(), " ".join(self.argv), tail(self.stdout()), tail(self.stderr()))


def _kill_everything():
    with _all_pids_lock:
        pids = list(_all_pids)
        routers = list(_all_routers)
    dps = set()
    for r in routers:
        dps.update(r.seen_dp_pids)
        try:
            dps.update(r.dp_pids(alive_only=False))
        except Exception:  # noqa: BLE001 - best effort while giving up
            pass
    for pid in pids:
        kill_pid(pid, signal.SIGKILL)
    for pid in dps:
        kill_pid(pid, signal.SIGKILL, expect="fd-router-dp")
    for r in routers:
        try:
            os.unlink("/dev/shm/" + r.shm_name.lstrip("/"))
        except OSError:
            pass


def _watchdog():
    sys.stderr.write("fdharness: the test file exceeded its %.0f s budget; killing every process it started\n"
                     % FILE_BUDGET_SECS)
    with _all_pids_lock:
        harnesses = list(_open_harnesses)
    for h in harnesses:
        sys.stderr.write("\n===== logs of the running test\n%s\n" % h.logs())
    sys.stderr.flush()
    _kill_everything()
    for h in harnesses:
        h.remove_files()
    os._exit(3)


_dog = threading.Timer(FILE_BUDGET_SECS, _watchdog)
_dog.daemon = True
_dog.start()
atexit.register(_kill_everything)


# ---------------------------------------------------------------------------------------------
# HTTP (blocking, always with a timeout)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def text(self):
        return self.body.decode(errors="replace")

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


def http_request(port, method, path, body=None, headers=None, timeout=10.0):
    """One request on a fresh connection. body: bytes, str or a JSON-able object."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    conn = http.client.HTTPConnection(HOST, port, timeout=scaled(timeout))
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def get(port, path, timeout=10.0):
    return http_request(port, "GET", path, timeout=timeout)


def post(port, path, body, timeout=10.0, headers=None):
    return http_request(port, "POST", path, body=body, timeout=timeout, headers=headers)


class Stream:
    """A streamed response read incrementally (SSE events with their arrival times)."""

    def __init__(self, port, path, body, timeout=30.0):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=scaled(timeout))
        self.conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}

    def events(self):
        """Yields (monotonic time, data string) for each `data:` event as it arrives."""
        buf = b""
        while True:
            chunk = self.resp.read1(65536)
            if not chunk:
                return
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                for line in ev.split(b"\n"):
                    if line.startswith(b"data: "):
                        yield time.monotonic(), line[6:].decode()

    def read_all(self):
        return self.resp.read()

    def close(self):
        """Close the client side abruptly (the router sees the client go away). Idempotent."""
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.resp.close()
        self.conn.close()


def chat_body(content="hello", stream=False, **extra):
    body = {"model": "default", "messages": [{"role": "user", "content": content}], "stream": stream}
    body.update(extra)
    return body


def parse_sse(data):
    """All `data:` payloads of an SSE body (bytes)."""
    out = []
    for ev in data.split(b"\n\n"):
        for line in ev.split(b"\n"):
            if line.startswith(b"data: "):
                out.append(line[6:].decode())
    return out


# ---------------------------------------------------------------------------------------------
# fd-sim


class Sim:
    """An fd-sim instance (a fake FastDeploy server)."""

    def __init__(self, proc, port, name):
        self.proc = proc
        self.port = port
        self.name = name
        self.url = "http://%s:%d" % (HOST, port)

    @property
    def pid(self):
        return self.proc.pid

    def stats(self):
        return get(self.port, "/sim/stats", timeout=5).json()

    def set_health(self, healthy):
        r = post(self.port, "/sim/health", {"healthy": healthy}, timeout=5)
        assert r.status == 200, r

    def set_fail(self, mode, status=None, count=None):
        body = {"mode": mode}
        if status is not None:
            body["status"] = status
        if count is not None:
            body["count"] = count
        r = post(self.port, "/sim/fail", body, timeout=5)
        assert r.status == 200, r

    def reset(self):
        r = post(self.port, "/sim/reset", {}, timeout=5)
        assert r.status == 200, r

    def register_payload(self, role="mixed", **extra):
        p = {"role": role, "host_ip": HOST, "port": self.port}
        p.update(extra)
        return p


# ---------------------------------------------------------------------------------------------
# fd-router


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a double-quoted YAML string


def to_yaml(doc):
    """config.yaml / register.yaml text for {section: {key: value}} or {"instances": [ {...} ]}."""
    lines = []
    for section, body in doc.items():
        lines.append("%s:" % section)
        if isinstance(body, dict):
            for k, v in body.items():
                lines.append("  %s: %s" % (k, _yaml_scalar(v)))
        else:
            for item in body:
                first = True
                for k, v in item.items():
                    if isinstance(v, list):
                        v = "[" + ", ".join(_yaml_scalar(x) for x in v) + "]"
                    else:
                        v = _yaml_scalar(v)
                    lines.append("  %s %s: %s" % ("-" if first else " ", k, v))
                    first = False
    return "\n".join(lines) + "\n"


class Router:
    """An fd-router started by a test: the launcher's process is the control plane (it execs
    fd-router-cp); the data plane's pid comes from shared memory."""

    def __init__(self, h, proc, port, shm_name, control_socket):
        self.h = h
        self.proc = proc
        self.port = port
        self.shm_name = shm_name
        self.control_socket = control_socket
        self.seen_dp_pids = set()

    @property
    def cp_pid(self):
        return self.proc.pid

    def fdctl(self, *args, check=True):
        return self.h.fdctl("--port", str(self.port), "--shm_name", self.shm_name, *args, check=check)

    def status(self):
        return json.loads(self.fdctl("status", "--json").stdout)

    def registered_local(self):
        """`fdctl registered --json` instances."""
        return json.loads(self.fdctl("registered", "--json").stdout)["instances"]

    def dp_pids(self, alive_only=True):
        pids = [d["pid"] for d in self.status()["dp"] if d["pid"] > 0 and (d.get("alive", True) or not alive_only)]
        self.seen_dp_pids.update(pids)
        return pids

    def serving_dp(self):
        """The pid of the one serving, live data plane (None if not exactly one)."""
        dps = [d for d in self.status()["dp"] if d.get("alive", True) and d["state"] == "serving"]
        if len(dps) != 1:
            return None
        self.seen_dp_pids.add(dps[0]["pid"])
        return dps[0]["pid"]

    def cp_status(self):
        """The control plane's /status over its control socket."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(scaled(3))
        try:
            s.connect(self.control_socket)
            s.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return json.loads(body)

    def get(self, path, timeout=10.0):
        return get(self.port, path, timeout)

    def post(self, path, body, timeout=10.0, headers=None):
        return post(self.port, path, body, timeout, headers)

    def chat(self, body, timeout=30.0):
        return post(self.port, "/v1/chat/completions", body, timeout)

    def register(self, payload, timeout=15.0):
        return self.post("/register", payload, timeout)

    def register_sim(self, sim, role="mixed", **extra):
        r = self.register(sim.register_payload(role, **extra))
        assert r.status == 200, "register %s: %r" % (sim.url, r)
        return r

    def registered(self):
        r = self.get("/registered")
        assert r.status == 200, r
        return r.json()

    def registered_urls(self, role="mixed"):
        return sorted(w["url"] for w in self.registered()[role])

    def selectable_urls(self):
        return sorted(i["url"] for i in self.registered_local() if i["selectable"])

    def inflight(self):
        """{url: in-flight requests} from fdctl, for LIVE and draining instances."""
        return {i["url"]: i["inflight"] for i in self.registered_local()}

    def wait_inflight_zero(self, timeout=10.0):
        """Every instance's in-flight requests and prompt tokens back to 0."""
        def counts():
            return {i["url"]: (i["inflight"], i["tokens"]) for i in self.registered_local()}

        wait_until(lambda: all(v == (0, 0) for v in counts().values()), timeout,
                   what=lambda: "every in-flight (requests, tokens) back to 0 (now %s)" % (counts(),))

    def shutdown(self):
        """Kill the control plane and every data plane we know of, by pid; wait until gone."""
        dps = set(self.seen_dp_pids)
        try:
            dps.update(self.dp_pids(alive_only=False))
        except Exception:  # noqa: BLE001 - shm may already be gone
            pass
        try:
            dps.add(int(self.cp_status()["cp"]["dp_pid"]))
        except Exception:  # noqa: BLE001 - the control plane may be dead
            pass
        self.proc.stop(timeout=2.0)
        try:  # a DP the dying CP may have started meanwhile
            dps.update(self.dp_pids(alive_only=False))
        except Exception:  # noqa: BLE001
            pass
        for pid in dps:
            kill_pid(pid, signal.SIGKILL, expect="fd-router-dp")
        for pid in dps:
            try:
                wait_until(lambda: not pid_alive(pid) or "fd-router-dp" not in _proc_cmdline(pid), 5,
                           what="data plane %d to exit" % pid)
            except AssertionError as e:
                sys.stderr.write("fdharness: %s\n" % e)


# ---------------------------------------------------------------------------------------------
# the per-test harness


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class Harness:
    """Per test: a temp dir, the processes started, and their cleanup."""

    def __init__(self):
        self.tmpdir = tempfile.mkdtemp(prefix="fdit-")
        self.procs = []
        self.routers = []
        self.shm_names = []
        self._closed = False
        with _all_pids_lock:
            _open_harnesses.append(self)

    # -- processes

    def spawn(self, name, argv, env=None, cwd=None):
        p = Proc("%02d-%s" % (len(self.procs), name), argv, self.tmpdir, env=env, cwd=cwd)
        self.procs.append(p)
        return p

    def fdctl(self, *args, check=True):
        r = subprocess.run([binary("fdctl")] + list(args), capture_output=True, text=True, timeout=scaled(10))
        if check and r.returncode != 0:
            raise AssertionError("fdctl %s: exit %d\nstdout: %s\nstderr: %s" % (" ".join(args), r.returncode,
                                                                             r.stdout, r.stderr))
        return r

    def start_sim(self, name=None, tokens=None, token_delay_ms=None, router=None, register_interval_secs=None,
                  role="mixed", port=0, extra=()):
        name = name or "sim%d" % len(self.procs)
        argv = [binary("fd-sim"), "--port", str(port), "--host", HOST, "--name", name]
        if tokens is not None:
            argv += ["--tokens", str(tokens)]
        if token_delay_ms is not None:
            argv += ["--token-delay-ms", str(token_delay_ms)]
        if router is not None:
            argv += ["--router", "%s:%d" % (HOST, router.port), "--role", role]
        if register_interval_secs is not None:
            argv += ["--register-interval-secs", str(register_interval_secs)]
        argv += list(extra)
        p = self.spawn(name, argv)

        def listening():
            if not p.alive():
                raise AssertionError("fd-sim exited early:\n" + p.logs())
            for line in p.stdout().splitlines():
                if line.startswith("fd-sim listening on "):
                    return int(line.split()[-1])
            return None

        bound = wait_until(listening, 10, what="fd-sim %s to listen" % name)
        sim = Sim(p, bound, name)
        wait_until(lambda: get(bound, "/health", timeout=2).status == 200, 10, what="fd-sim %s /health" % name)
        return sim

    def start_router(self, config=None, register=None, splitwise=False, port=None, wait_ready=True, cwd=None):
        """Start fd-router with a config (dict of sections, merged over fast test defaults) and
        optionally a register.yaml (list of instance dicts); cwd: its working directory (where
        log.output: file writes ./logs), else the test's own."""
        n = next(_seq)
        port = port or free_port()
        shm_name = "/fd-router-it-%d-%d" % (os.getpid(), n)
        sock = os.path.join(self.tmpdir, "ctl-%d.sock" % n)
        cfg = {
            "server": {"listen": HOST},
            "log": {"level": "info"},
            "manager": {"health-check-interval-secs": 0.2, "health-check-timeout-secs": scaled(1)},
            "router": {"dp-threads": 2},
        }
        for section, body in (config or {}).items():
            cfg.setdefault(section, {}).update(body)
        if register is not None:
            reg_path = os.path.join(self.tmpdir, "register-%d.yaml" % n)
            with open(reg_path, "w") as f:
                f.write(to_yaml({"instances": register}))
            cfg["manager"]["register-path"] = reg_path
        cfg_path = os.path.join(self.tmpdir, "config-%d.yaml" % n)
        with open(cfg_path, "w") as f:
            f.write(to_yaml(cfg))
        argv = [binary("fd-router"), "--port", str(port), "--config_path", cfg_path, "--shm_name", shm_name,
                "--control_socket", sock]
        if splitwise:
            argv.append("--splitwise")
        self.shm_names.append(shm_name)
        p = self.spawn("router%d" % n, argv, cwd=cwd)
        r = Router(self, p, port, shm_name, sock)
        self.routers.append(r)
        with _all_pids_lock:
            _all_routers.append(r)
        if wait_ready:
            self.wait_router_ready(r)
        return r

    def wait_router_ready(self, r):
        def ready():
            if not r.proc.alive():
                raise AssertionError("fd-router exited early:\n" + r.proc.logs())
            return r.get("/health", timeout=2).status == 200 and r.serving_dp()

        wait_until(ready, 15, what="fd-router on port %d to serve /health" % r.port)

    # -- cleanup

    def close(self):
        if self._closed:
            return
        self._closed = True
        for r in self.routers:
            try:
                r.shutdown()
            except Exception as e:  # noqa: BLE001 - keep cleaning up
                sys.stderr.write("fdharness: router shutdown: %r\n" % (e,))
        for p in self.procs:
            p.stop(timeout=2.0)
        for name in self.shm_names:
            try:
                os.unlink("/dev/shm/" + name.lstrip("/"))
            except FileNotFoundError:
                pass

    def logs(self):
        return "\n".join(p.logs() for p in self.procs)

    def sanitizer_reports(self):
        """Processes whose stderr carries an AddressSanitizer / LeakSanitizer / UBSan report."""
        return [p.name for p in self.procs if any(m in p.stderr() for m in SANITIZER_MARKERS)]

    def remove_files(self):
        with _all_pids_lock:
            if self in _open_harnesses:
                _open_harnesses.remove(self)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


class FdTestCase(unittest.TestCase):
    """A test case with self.h, a Harness cleaned up after every test; on failure the logs of
    every process the test started are printed."""

    def setUp(self):
        self.h = Harness()
        self.addCleanup(self.check_sanitizers)
        self.addCleanup(self.h.close)

    def check_sanitizers(self):
        """Runs after every process stopped: a sanitizer report anywhere fails the test."""
        reports = self.h.sanitizer_reports()
        self.assertEqual(reports, [], "sanitizer reports in the logs of these processes")

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            h = getattr(self, "h", None)
            if h is not None:
                h.close()
                if len(result.failures) + len(result.errors) > before:
                    sys.stderr.write("\n===== logs of %s\n%s\n" % (self.id(), h.logs()))
                h.remove_files()


def main():
    """Run the calling file's tests; exit non-zero on failure."""
    unittest.main(module="__main__", verbosity=2)
