#!/usr/bin/env bash
# bench/proxy_vs_nginx.sh - proxy throughput of fd-router next to nginx, on the same backends.
#
# Usage:
#   bench/proxy_vs_nginx.sh                      # binaries from build/bin
#   FD_BIN=build-asan/bin bench/proxy_vs_nginx.sh
#   ROUNDS=3 DURATION=5s CONNECTIONS=64 DP_THREADS=1 bench/proxy_vs_nginx.sh
#
# What it does, all on 127.0.0.1:
#   backends  one nginx (1 worker) answering a fixed JSON chat completion with `return 200` on
#             two ports, and GET /health with 200 (fd-router health-checks what registers)
#   (a)       fd-router, policy request_num, DP_THREADS data-plane threads (default 1, as the
#             nginx proxy has 1 worker), both backends registered through POST /register
#   (b)       nginx (1 worker) as a reverse proxy to the same two backends, keep-alive upstreams
#   then wrk -t1 -c$CONNECTIONS -d$DURATION POSTs a small chat JSON (lua script) to (a) and (b)
#   alternately, ROUNDS times, and prints both req/s per round, the means and router/nginx.
#
# Needs nginx, wrk, python3 (free ports, JSON) and the built binaries (fd-router, fd-router-cp,
# fd-router-dp, fdctl). Writes only inside a temp dir (removed at exit), kills only the processes
# it started (by pid). wrk, the proxies and the backends share the machine's cores: compare the
# two columns with each other, not with numbers from other machines. Runs with non-2xx responses
# or socket errors are flagged; their numbers are not comparable.
set -euo pipefail
cd "$(dirname "$0")/.."

FD_BIN=${FD_BIN:-build/bin}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-64}
DP_THREADS=${DP_THREADS:-1}

for tool in nginx wrk python3; do
  command -v "$tool" >/dev/null || { echo "proxy_vs_nginx: $tool is required" >&2; exit 1; }
done
for b in fd-router fd-router-cp fd-router-dp fdctl; do
  [ -x "$FD_BIN/$b" ] || { echo "proxy_vs_nginx: $FD_BIN/$b not found (build first, or set FD_BIN)" >&2; exit 1; }
done
FD_BIN=$(cd "$FD_BIN" && pwd)

TMP=$(mktemp -d /tmp/fd-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers may run as an unprivileged user
SHM_NAME=/fd-router-bench-$$
BACKEND_PID= PROXY_PID= ROUTER_PID= DP_PID=

# kill by pid: $1 pid, $2 what it must be (checked in /proc/<pid>/cmdline, against pid reuse)
kill_ours() {
  local pid=$1 what=$2
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$what" &&
    kill "$pid" 2>/dev/null || true
}

wait_gone() { # pid, deciseconds
  local pid=$1 n=$2
  while [ -n "$pid" ] && [ "$n" -gt 0 ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1
    n=$((n - 1))
  done
}

cleanup() {
  set +e
  [ -z "$DP_PID" ] && DP_PID=$(dp_pid)
  kill_ours "$ROUTER_PID" fd-router
  wait_gone "$ROUTER_PID" 50
  kill_ours "$DP_PID" fd-router-dp # normally stopped by its control plane already
  kill_ours "$PROXY_PID" nginx
  kill_ours "$BACKEND_PID" nginx
  wait 2>/dev/null
  rm -f "/dev/shm/${SHM_NAME#/}"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

http_code() { # url -> status code (000 when nothing answers)
  python3 - "$1" <<'EOF'
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}

wait_http() { # url what
  for _ in $(seq 1 100); do
    [ "$(http_code "$1")" = 200 ] && return 0
    sleep 0.1
  done
  echo "proxy_vs_nginx: $2 did not come up ($1); logs in $TMP:" >&2
  tail -n 20 "$TMP"/*.log >&2 || true
  exit 1
}

dp_pid() {
  "$FD_BIN/fdctl" --shm_name "$SHM_NAME" status --json 2>/dev/null |
    python3 -c 'import json,sys; d=[x["pid"] for x in json.load(sys.stdin)["dp"]]; print(d[0] if d else "")' 2>/dev/null || true
}

B1=$(free_port) B2=$(free_port) PROXY=$(free_port) ROUTER=$(free_port)
COMPLETION='{"id":"chatcmpl-bench","object":"chat.completion","created":0,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'

nginx_common() { # name
  cat <<EOF
daemon off;
worker_processes 1;
pid $TMP/$1.pid;
error_log $TMP/$1.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/$1-body;
  proxy_temp_path $TMP/$1-proxy;
  fastcgi_temp_path $TMP/$1-fastcgi;
  uwsgi_temp_path $TMP/$1-uwsgi;
  scgi_temp_path $TMP/$1-scgi;
  keepalive_requests 1000000;
EOF
}

{
  nginx_common backends
  for port in "$B1" "$B2"; do
    cat <<EOF
  server {
    listen 127.0.0.1:$port;
    location = /health { default_type application/json; return 200 '{"status":"ok"}'; }
    location / { default_type application/json; return 200 '$COMPLETION'; }
  }
EOF
  done
  echo "}"
} >"$TMP/backends.conf"

{
  nginx_common proxy
  cat <<EOF
  upstream backends {
    server 127.0.0.1:$B1;
    server 127.0.0.1:$B2;
    keepalive 128;
  }
  server {
    listen 127.0.0.1:$PROXY;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
} >"$TMP/proxy.conf"

cat >"$TMP/config.yaml" <<EOF
server:
  listen: "127.0.0.1"
log:
  level: "warn"
scheduler:
  policy: "request_num"
router:
  dp-threads: $DP_THREADS
EOF

cat >"$TMP/chat.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","stream":false,"max_tokens":16,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say ok."}]}'
EOF

nginx -e "$TMP/backends.log" -p "$TMP" -c "$TMP/backends.conf" >"$TMP/backends.out" 2>&1 &
BACKEND_PID=$!
nginx -e "$TMP/proxy.log" -p "$TMP" -c "$TMP/proxy.conf" >"$TMP/proxy.out" 2>&1 &
PROXY_PID=$!
"$FD_BIN/fd-router" --port "$ROUTER" --config_path "$TMP/config.yaml" --shm_name "$SHM_NAME" \
  --control_socket "$TMP/ctl.sock" >"$TMP/router.log" 2>&1 &
ROUTER_PID=$!

wait_http "http://127.0.0.1:$B1/health" "backend nginx"
wait_http "http://127.0.0.1:$B2/health" "backend nginx"
wait_http "http://127.0.0.1:$ROUTER/health" "fd-router"
for port in "$B1" "$B2"; do
  code=$(python3 - "$ROUTER" "$port" <<'EOF'
import json, sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:%s/register" % sys.argv[1], method="POST",
                             data=json.dumps({"role": "mixed", "host_ip": "127.0.0.1", "port": int(sys.argv[2])}).encode(),
                             headers={"Content-Type": "application/json"})
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
EOF
)
  [ "$code" = 200 ] || { echo "proxy_vs_nginx: registering backend $port failed: $code" >&2; exit 1; }
done
DP_PID=$(dp_pid)
# one request through each, so a broken setup fails here and not as a wall of errors
for port in "$ROUTER" "$PROXY"; do
  curl_like=$(python3 - "$port" <<'EOF'
import sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:%s/v1/chat/completions" % sys.argv[1], method="POST",
                             data=b'{"messages":[{"role":"user","content":"hi"}]}', headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(req, timeout=5).status)
EOF
) || true
  [ "$curl_like" = 200 ] || { echo "proxy_vs_nginx: a request through port $port failed" >&2; exit 1; }
done

run_wrk() { # port label round -> prints req/s on stdout, wrk's output kept in $TMP
  local out="$TMP/wrk-$2-$3.txt"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$TMP/chat.lua" "http://127.0.0.1:$1/v1/chat/completions" >"$out" 2>&1
  if grep -q -e "Non-2xx" -e "Socket errors" "$out"; then
    echo "proxy_vs_nginx: round $3, $2: $(grep -e Non-2xx -e 'Socket errors' "$out" | tr -s ' ')" >&2
  fi
  awk '/^Requests\/sec:/ {print $2}' "$out"
}

echo "fd-router (request_num, $DP_THREADS DP thread(s)) vs nginx proxy (1 worker, keepalive upstreams)"
echo "wrk -t1 -c$CONNECTIONS -d$DURATION, POST /v1/chat/completions, backends: nginx return 200 on :$B1 :$B2"
printf "%-8s %14s %14s %8s\n" round "fd-router r/s" "nginx r/s" ratio
sum_r=0 sum_n=0
for round in $(seq 1 "$ROUNDS"); do
  r=$(run_wrk "$ROUTER" router "$round")
  n=$(run_wrk "$PROXY" nginx "$round")
  [ -n "$r" ] && [ -n "$n" ] || { echo "proxy_vs_nginx: wrk gave no result (see $TMP)" >&2; exit 1; }
  printf "%-8s %14.0f %14.0f %8.3f\n" "$round" "$r" "$n" "$(awk -v a="$r" -v b="$n" 'BEGIN {print a / b}')"
  sum_r=$(awk -v a="$sum_r" -v b="$r" 'BEGIN {print a + b}')
  sum_n=$(awk -v a="$sum_n" -v b="$n" 'BEGIN {print a + b}')
done
awk -v r="$sum_r" -v n="$sum_n" -v k="$ROUNDS" \
  'BEGIN {printf "%-8s %14.0f %14.0f %8.3f\n", "mean", r / k, n / k, r / n}'
