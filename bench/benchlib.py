"""bench/benchlib.py - what every bench/*.py command shares: the processes a benchmark starts
(fd-sim instances, fd-router, nginx) and their cleanup by pid, free ports, readiness polling,
the load generator, the machine description, result tables and gnuplot charts.

Everything runs on 127.0.0.1. Each process is started here and killed here, by its pid, after
checking /proc/<pid>/cmdline (a pid the kernel reused for something else is left alone); the data
plane, which fd-router's control plane spawns, is found through `fdctl status --json`. Cleanup
runs at exit, on SIGINT/SIGTERM and when a benchmark fails.

For a closer look at a run: BENCH_KEEP_TMP=1 keeps the temporary folder (every process's log,
config and loadgen output), and BENCH_LOG_LEVEL sets the routers' log level (default warn; info
shows, among others, the control plane's fleet-verdict changes).
"""

import atexit
import csv
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADGEN = os.path.join(ROOT, "tools", "loadgen", "loadgen.py")
HOST = "127.0.0.1"


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.05)


def http(method, url, body=None, timeout=10):
    """(status, body bytes); status 0 when nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def cpu_seconds(pid):
    """User + system CPU time a process has used so far (/proc/<pid>/stat), 0 if it is gone: taken
    around a measurement, the CPU time per request it cost, which other work on a shared machine
    changes far less than the requests per second."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def kill_pid(pid, expect, sig=signal.SIGTERM):
    if pid and expect in _cmdline(pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class Bench:
    """One benchmark run: its temp dir, its processes, its results dir."""

    def __init__(self, name, results_dir, fd_bin):
        self.name = name
        self.results = os.path.abspath(results_dir)
        os.makedirs(self.results, exist_ok=True)
        self.bin = os.path.abspath(fd_bin)
        self.tmp = tempfile.mkdtemp(prefix="fd-bench-%s-" % name)
        os.chmod(self.tmp, 0o755)  # nginx workers may run as an unprivileged user
        self.procs = []  # (Popen, what its cmdline must contain)
        self.cpus = {}  # role -> taskset CPU list, set by pin_cpus()
        self.routers = []
        self.router_seq = 0
        self.seq = 0
        atexit.register(self.cleanup)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

    # -- processes

    def binary(self, name):
        path = os.path.join(self.bin, name)
        if not os.access(path, os.X_OK):
            raise SystemExit("%s: %s not found (build first, or pass --bin)" % (self.name, path))
        return path

    def pinned(self, role, argv):
        """argv under taskset when CPUs are assigned to roles (see pin_cpus)."""
        cpus = self.cpus.get(role)
        return (["taskset", "-c", cpus] + argv) if cpus else argv

    def pin_cpus(self):
        """Give the proxy under test (fd-router or nginx proxy) the last CPU and everything else
        (backends, wrk) the others: on a small shared machine this keeps the kernel from putting
        the proxy and the load generator on one core in some runs and not in others (the runs
        then differ by 2x). No-op with fewer than 2 CPUs or without taskset."""
        n = os.cpu_count() or 1
        if n < 2 or not shutil.which("taskset"):
            return
        self.cpus = {"proxy": str(n - 1), "backend": "0-%d" % (n - 2), "load": "0-%d" % (n - 2)}

    def spawn(self, name, argv, expect=None, role=None):
        expect = expect or os.path.basename(argv[0])  # what the pid runs once taskset has exec'd it
        argv = self.pinned(role, argv)
        self.seq += 1
        out = open(os.path.join(self.tmp, "%s-%d.log" % (name, self.seq)), "w")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        p.log_path = out.name
        self.procs.append((p, expect))
        return p

    def stop(self, p, timeout=5):
        for q, expect in list(self.procs):
            if q is p:
                kill_pid(p.pid, expect)
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    kill_pid(p.pid, expect, signal.SIGKILL)
                    p.wait(timeout)
                self.procs.remove((q, expect))

    def start_sim(self, *args):
        """fd-sim with these extra options; returns (process, port)."""
        p = self.spawn("sim", [self.binary("fd-sim"), "--port", "0"] + [str(a) for a in args], role="backend")

        def port():
            with open(p.log_path) as f:
                for line in f:
                    if line.startswith("fd-sim listening on "):
                        return int(line.split()[-1])
            if p.poll() is not None:
                raise RuntimeError("fd-sim exited: " + open(p.log_path).read()[-2000:])
            return None

        wait_until(port, 10, "fd-sim to listen")
        return p, port()

    def start_router(self, policy, extra=None, dp_threads=1, register_path=None):
        """fd-router (launcher -> control plane -> data plane) with a config; returns a Router."""
        port = free_port()
        n = self.router_seq
        self.router_seq += 1
        cfg = {"server": {"listen": HOST}, "log": {"level": os.environ.get("BENCH_LOG_LEVEL", "warn")},
               "scheduler": {"policy": policy},
               "manager": {"health-check-interval-secs": 1, "health-check-timeout-secs": 2},
               "router": {"dp-threads": dp_threads}}
        for section, body in (extra or {}).items():
            cfg.setdefault(section, {}).update(body)
        if register_path:
            cfg["manager"]["register-path"] = register_path
        cfg_path = os.path.join(self.tmp, "config-%d.yaml" % n)
        with open(cfg_path, "w") as f:
            for section, body in cfg.items():
                f.write("%s:\n" % section)
                for k, v in body.items():
                    f.write("  %s: %s\n" % (k, json.dumps(v)))
        shm = "/fd-router-bench-%d-%d" % (os.getpid(), n)
        sock = os.path.join(self.tmp, "ctl-%d.sock" % n)
        p = self.spawn("router", [self.binary("fd-router"), "--port", str(port), "--config_path", cfg_path,
                                  "--shm_name", shm, "--control_socket", sock], expect="fd-router", role="proxy")
        r = Router(self, p, port, shm, sock)
        self.routers.append(r)
        wait_until(lambda: p.poll() is None and http("GET", r.url + "/health", timeout=2)[0] == 200 and r.dp_pid(),
                   20, "fd-router /health (log: %s)" % p.log_path)
        return r

    def stop_router(self, r):
        dps = set(r.seen_dps)
        dps.add(r.dp_pid())
        self.stop(r.proc)
        for dp in dps:
            if dp:
                kill_pid(dp, "fd-router-dp", signal.SIGKILL)
        try:
            os.unlink("/dev/shm/" + r.shm.lstrip("/"))
        except FileNotFoundError:
            pass
        self.routers.remove(r)

    def start_nginx(self, name, http_body, role="backend"):
        """nginx (1 worker, in the foreground) with this `http { }` body; returns the process."""
        conf = os.path.join(self.tmp, name + ".conf")
        with open(conf, "w") as f:
            f.write("daemon off;\nworker_processes 1;\nworker_rlimit_nofile 65536;\npid %s/%s.pid;\n"
                    "error_log %s/%s.err warn;\nevents { worker_connections 16384; }\nhttp {\n"
                    "  access_log off;\n  keepalive_requests 1000000;\n" % (self.tmp, name, self.tmp, name))
            for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
                f.write("  %s_temp_path %s/%s-%s;\n" % (t, self.tmp, name, t))
            f.write(http_body + "\n}\n")
        return self.spawn(name, ["nginx", "-e", os.path.join(self.tmp, name + ".err"), "-p", self.tmp, "-c", conf],
                          expect="nginx", role=role)

    def cleanup(self):
        for r in list(self.routers):
            try:
                self.stop_router(r)
            except Exception as e:  # noqa: BLE001 - keep cleaning up
                log("cleanup: %r" % (e,))
        for p, expect in reversed(self.procs):
            kill_pid(p.pid, expect)
        for p, expect in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                kill_pid(p.pid, expect, signal.SIGKILL)
        self.procs = []
        if os.environ.get("BENCH_KEEP_TMP"):
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- load

    def wrk(self, url, lua, connections, duration):
        return wrk(url, lua, connections, duration, prefix=self.pinned("load", []))

    def loadgen(self, url, args, label, trace=False):
        """Run tools/loadgen on url (several: comma-separated); returns its summary dict, or with
        trace (summary, the per-request trace as a list of dicts: job, round, instance, group, ...)."""
        self.seq += 1
        out = os.path.join(self.tmp, "loadgen-%d.json" % self.seq)
        trace_path = os.path.join(self.tmp, "loadgen-%d.csv" % self.seq)
        r = subprocess.run([sys.executable, LOADGEN, "--url", url, "--json", out, "--quiet", "--label", label] +
                           (["--trace", trace_path] if trace else []) + [str(a) for a in args],
                           capture_output=True, text=True, timeout=1800)
        if not os.path.exists(out):
            raise RuntimeError("loadgen failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
        with open(out) as f:
            summary = json.load(f)["summary"]
        if not trace:
            return summary
        with open(trace_path, newline="") as f:
            return summary, list(csv.DictReader(f))

    # -- output

    def write(self, name, text):
        path = os.path.join(self.results, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def chart(self, png, script, data):
        """Run gnuplot on script (with {data} and {png} substituted); returns the PNG path or None."""
        data_path = self.write(png.replace(".png", ".dat"), data)
        png_path = os.path.join(self.results, png)
        gp = self.write(png.replace(".png", ".gp"), script.format(data=data_path, png=png_path, histogram=HISTOGRAM))
        if not shutil.which("gnuplot"):
            log("gnuplot not found: no chart (the data is in %s)" % data_path)
            return None
        r = subprocess.run(["gnuplot", gp], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            log("gnuplot failed: %s" % r.stderr[-1000:])
            return None
        return png_path


class Router:
    def __init__(self, bench, proc, port, shm, sock):
        self.bench = bench
        self.proc = proc
        self.port = port
        self.shm = shm
        self.url = "http://%s:%d" % (HOST, port)
        self.sock = sock
        self.seen_dps = set()  # data planes started by upgrades, stopped with the router

    def fdctl_json(self, *args):
        r = subprocess.run([self.bench.binary("fdctl"), "--shm_name", self.shm] + list(args) + ["--json"],
                           capture_output=True, text=True, timeout=10)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def dp_pid(self):
        st = self.fdctl_json("status")
        pids = [d["pid"] for d in (st or {}).get("dp", []) if d.get("pid", 0) > 0 and d.get("alive", True)]
        self.seen_dps.update(pids)
        return pids[0] if pids else None

    def upgrade(self, drain_secs=30):
        """fdctl upgrade: replace the data plane; returns fdctl's JSON outcome (ok: exit status 0)."""
        r = subprocess.run([self.bench.binary("fdctl"), "--port", str(self.port), "--shm_name", self.shm,
                            "--control_socket", self.sock, "--json", "upgrade", "--drain_secs", str(drain_secs)],
                           capture_output=True, text=True, timeout=drain_secs + 150)
        try:
            out = json.loads(r.stdout) if r.stdout.strip() else {}
        except ValueError:
            out = {"raw": r.stdout[-500:]}
        if out.get("new_pid"):
            self.seen_dps.add(out["new_pid"])
        out["ok"] = r.returncode == 0
        if not out["ok"]:
            out["stderr"] = r.stderr[-500:]
        return out

    def register(self, port, **extra):
        body = {"role": "mixed", "host_ip": HOST, "port": port}
        body.update(extra)
        status, text = http("POST", self.url + "/register", body, timeout=30)
        if status != 200:
            raise RuntimeError("register %d: %d %s" % (port, status, text[:200]))

    def selectable(self):
        inst = (self.fdctl_json("registered") or {}).get("instances", [])
        return sum(1 for i in inst if i.get("selectable"))

    def wait_selectable(self, n, timeout=60):
        wait_until(lambda: self.selectable() >= n, timeout, "%d selectable instances" % n)


def commit():
    """The commit measured: run_all.sh's (FD_BENCH_COMMIT, one for the whole run), else git's."""
    c = os.environ.get("FD_BENCH_COMMIT")
    if c:
        return c
    try:
        c = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD"], timeout=10).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (c + "+uncommitted" if dirty else c) or "unknown"


def machine():
    """A dict describing this machine, its load now and the commit measured."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "loadavg": open("/proc/loadavg").read().split()[:3], "commit": commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def machine_line():
    m = machine()
    return "commit %s; machine: %d CPUs, %s, Linux %s, load %s, %s" % (
        m["commit"], m["nproc"], m["cpu"], m["kernel"], " ".join(m["loadavg"]), m["date"])


# gnuplot settings shared by the clustered-bar charts (CHART templates take it as {histogram})
HISTOGRAM = """set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key outside top center horizontal
set grid ytics
set yrange [0:*]
"""


def fmt_table(header, rows):
    """Plain text table: header list, rows of lists (str() applied), right-aligned but the first column."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt_md(header, rows):
    out = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(out)


def default_bin():
    for d in (os.environ.get("FD_BIN"), os.path.join(ROOT, "build-bench2", "bin"), os.path.join(ROOT, "build", "bin")):
        if d and os.path.isdir(d):
            return d
    return os.path.join(ROOT, "build", "bin")


def common_args(p):
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "results"),
                   help="directory for the tables, JSON and PNG charts")
    p.add_argument("--bin", default=default_bin(), help="directory of the fd-router, fdctl and fd-sim binaries")


# -- wrk


def _wrk_time(s):
    """'812.00us' / '1.23ms' / '2.00s' -> seconds"""
    for unit, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0)):
        if s.endswith(unit):
            return float(s[:-len(unit)]) * scale
    return float(s)


def _threads_traced(pid):
    """Whether every thread of pid has a tracer (strace attached to all of them)."""
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                if not any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f):
                    return False
        return True
    except OSError:
        return False


def syscalls_during(pid, run, out_path, prefix=()):
    """System calls made by every thread of process pid while run() runs (strace -c -f, attached
    before run() starts and detached after it returns): ({syscall: calls}, run()'s result)."""
    st = subprocess.Popen(list(prefix) + ["strace", "-c", "-f", "-q", "-o", out_path, "-p", str(pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _threads_traced(pid), 10, "strace attached to pid %d" % pid)
        result = run()
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(30)
    calls = {}
    with open(out_path) as f:
        for line in f:
            parts = line.split()
            # "% time  seconds  usecs/call  calls  [errors]  syscall": calls is the 4th column
            if len(parts) >= 5 and parts[-1] != "total" and parts[3].isdigit():
                calls[parts[-1]] = int(parts[3])
    return calls, result


def write_lua(path, body):
    """A wrk script that POSTs body (bytes) as JSON."""
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write("wrk.body = [==[%s]==]\n" % body.decode())
    return path


def wrk(url, lua, connections, duration, timeout=10, prefix=()):
    """Run wrk -t1 (closed loop); returns {"rps", "p50", "p90", "p99", "errors"} (seconds)."""
    r = subprocess.run(list(prefix) + ["wrk", "-t1", "-c%d" % connections, "-d%ds" % duration, "--latency", "--timeout",
                        "%ds" % timeout, "-s", lua, url], capture_output=True, text=True,
                       timeout=duration + timeout + 30)
    out = {"rps": 0.0, "requests": 0, "p50": None, "p90": None, "p99": None, "errors": 0, "raw": r.stdout[-3000:]}
    for line in r.stdout.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            out["rps"] = float(parts[1])
        elif len(parts) > 2 and parts[1:3] == ["requests", "in"]:
            out["requests"] = int(parts[0])
        elif len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            out["p" + parts[0][:-1]] = _wrk_time(parts[1])
        elif "Non-2xx" in line:
            out["errors"] += int(parts[-1])
        elif line.strip().startswith("Socket errors"):
            out["errors"] += sum(int(x.rstrip(",")) for x in parts if x.rstrip(",").isdigit())
    if r.returncode != 0 or out["p50"] is None:
        raise RuntimeError("wrk %s failed: %s %s" % (url, r.stdout[-1000:], r.stderr[-1000:]))
    return out

