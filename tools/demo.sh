#!/usr/bin/env bash
# Installs the dependencies, builds fd-router, and starts a demo on 127.0.0.1: the router on
# port ${PORT:-9000} plus two simulated FastDeploy instances (fd-sim) that register with it the
# way FastDeploy does. Prints a curl line to try; Ctrl-C stops everything it started.
# BUILD_DIR (default build) is the build directory; SKIP_SETUP=1 skips the dependency install.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-9000}
BUILD_DIR=${BUILD_DIR:-build}
BIN=$BUILD_DIR/bin

step() { echo "demo: $*"; }
die() {
  echo "demo: error: $*" >&2
  exit 1
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_busy "$PORT" && die "port $PORT is already in use on 127.0.0.1 (another router?); run PORT=<free port> $0"
if [ "${SKIP_SETUP:-0}" != 1 ]; then
  step "installing the build dependencies (tools/setup-deps.sh; apt may take a few minutes)"
  tools/setup-deps.sh
fi
step "configuring and building in $BUILD_DIR (a few minutes the first time)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" >/dev/null
LOG=$(mktemp -d /tmp/fd-router-demo.XXXXXX)
pids=()
cleanup() {
  trap - EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped; logs are in $LOG"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "starting fd-router on 127.0.0.1:$PORT (log: $LOG/router.log)"
"$BIN/fd-router" --port "$PORT" >"$LOG/router.log" 2>&1 &
pids+=($!)
for i in 1 2; do
  "$BIN/fd-sim" --port 0 --name "sim-$i" --router "127.0.0.1:$PORT" --role mixed \
    --tokens 8 --token-delay-ms 50 >"$LOG/sim-$i.log" 2>&1 &
  pids+=($!)
done

step "waiting for the two simulated instances to register and pass a health check"
n=0
for _ in $(seq 1 150); do
  kill -0 "${pids[0]}" 2>/dev/null || die "fd-router exited: $(tail -n 5 "$LOG/router.log")"
  n=$("$BIN/fdctl" --port "$PORT" registered --json 2>/dev/null | grep -c '"selectable":true' || true)
  [ "${n:-0}" -ge 2 ] && break
  sleep 0.1
done
[ "${n:-0}" -ge 2 ] || die "only ${n:-0} of 2 instances are serving after 15 s; see the logs in $LOG"
echo "fd-router is listening on 127.0.0.1:$PORT with $n instances. Try:"
echo
echo "  curl -N http://127.0.0.1:$PORT/v1/chat/completions -H 'Content-Type: application/json' \\"
echo "       -d '{\"model\":\"demo\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}'"
echo
echo "  curl http://127.0.0.1:$PORT/registered ; $BIN/fdctl --port $PORT registered"
echo
echo "Ctrl-C to stop."
wait "${pids[0]}"
