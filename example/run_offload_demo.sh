#!/bin/sh
# The "main job": start offload_server on an ephemeral loopback port, run offload_client
# against it, print the client's summary, stop the server (SIGTERM) and check that both
# exited with status 0.
#
# usage: example/run_offload_demo.sh BUILD_DIR [offload_client flags...]
#   e.g. cmake -S . -B build && cmake --build build --target offload_server offload_client
#        example/run_offload_demo.sh build
set -eu

build=${1:?usage: $0 BUILD_DIR [offload_client flags...]}
shift
server=$(find "$build" -type f -name offload_server -perm -u+x | head -n 1)
client=$(find "$build" -type f -name offload_client -perm -u+x | head -n 1)
if [ -z "$server" ] || [ -z "$client" ]; then
  echo "run_offload_demo: offload_server/offload_client not found under $build" >&2
  exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$server" > "$out" &
pid=$!

# The server prints its port on its first line.
port=
for _ in $(seq 100); do
  port=$(head -n 1 "$out")
  [ -n "$port" ] && break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "run_offload_demo: the server did not report its port" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
fi
echo "offload_server listening on 127.0.0.1:$port"

status=0
"$client" --port "$port" "$@" || status=$?

kill -TERM "$pid"
server_status=0
wait "$pid" || server_status=$?
echo "offload_server stopped (exit status $server_status)"
[ "$status" -eq 0 ] && [ "$server_status" -eq 0 ]
