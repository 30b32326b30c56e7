#!/usr/bin/env bash
# Installs the dependencies, builds fd-router, and starts a demo on 127.0.0.1: the router on
# port ${PORT:-9000} plus two simulated FastDeploy instances (fd-sim) that register with it the
# way FastDeploy does. Prints a curl line to try; Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-9000}
tools/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
BIN=build/bin
LOG=$(mktemp -d /tmp/fd-router-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped; logs were in $LOG"
}
trap cleanup EXIT INT TERM

"$BIN/fd-router" --port "$PORT" >"$LOG/router.log" 2>&1 &
pids+=($!)
for i in 1 2; do
  "$BIN/fd-sim" --port 0 --name "sim-$i" --router "127.0.0.1:$PORT" --role mixed \
    --tokens 8 --token-delay-ms 50 >"$LOG/sim-$i.log" 2>&1 &
  pids+=($!)
done

for _ in $(seq 1 100); do
  n=$(curl -s "http://127.0.0.1:$PORT/registered_number" 2>/dev/null | sed -n 's/.*"mixed":\([0-9]*\).*/\1/p')
  [ "${n:-0}" -ge 2 ] && break
  sleep 0.1
done
echo "fd-router is listening on 127.0.0.1:$PORT with ${n:-0} instance(s) registered. Try:"
echo
echo "  curl -N http://127.0.0.1:$PORT/v1/chat/completions -H 'Content-Type: application/json' \\"
echo "       -d '{\"model\":\"demo\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}'"
echo
echo "  curl http://127.0.0.1:$PORT/registered ; $BIN/fdctl --port $PORT registered"
echo
echo "Ctrl-C to stop."
wait "${pids[0]}"
