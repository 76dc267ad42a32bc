#!/bin/sh
# What the hand-off costs in a whole server: handoff_server with each of its four
# hand-offs (waker, timer, concurrent_channel, channel), driven by offload_client for a
# few seconds each. The four are interleaved in every round, so that they share the
# machine's conditions. The runs go to stderr; stdout gets a Markdown section: the
# command, the machine, and the median requests/s, p50 and p99 per hand-off.
#
# usage: bench/handoff_bench.sh [BUILD_DIR [RUNS [offload_client flags...]]]
#   BUILD_DIR  default build-bench; handoff_server and offload_client are built there
#              (cmake -S bench, Release) unless found under it
#   RUNS       rounds, default 5
#   e.g. bench/handoff_bench.sh build-bench 5 --connections 8 --rounds 1 >> results.md
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-bench}
runs=${2:-5}
[ $# -ge 2 ] && shift 2 || shift $#
handoffs="waker timer concurrent_channel channel"

find_binary() { find "$build" -type f -name "$1" -perm -u+x 2>/dev/null | head -n 1; }
server=$(find_binary handoff_server)
client=$(find_binary offload_client)
if [ -z "$server" ] || [ -z "$client" ]; then
  cmake -S "$root/bench" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j 2 --target handoff_server offload_client >/dev/null
  server=$(find_binary handoff_server)
  client=$(find_binary offload_client)
fi

compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)
compiler=${compiler:-c++}

results=$(mktemp)
out=$(mktemp)
trap 'rm -f "$results" "$out"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
for run in $(seq "$runs"); do
  for handoff in $handoffs; do
    "$server" "$handoff" > "$out" &
    pid=$!
    port=
    for _ in $(seq 100); do
      port=$(head -n 1 "$out")
      [ -n "$port" ] && break
      sleep 0.1
    done
    [ -n "$port" ] || { echo "handoff_server $handoff did not report its port" >&2; exit 1; }
    line=$("$client" --port "$port" "$@")
    kill -TERM "$pid"
    wait "$pid"
    echo "run $run $handoff: $line" >&2
    # "... req/s N  p50 N us  p99 N us ..." -> handoff req/s p50 p99
    echo "$line" | awk -v h="$handoff" '{
      for (i = 1; i < NF; ++i) {
        if ($i == "req/s") r = $(i + 1); if ($i == "p50") p = $(i + 1); if ($i == "p99") q = $(i + 1)
      }
      print h, r, p, q }' >> "$results"
  done
done

flags=${*:-(defaults: --connections 4 --seconds 2 --rounds 2000)}
cat <<EOF
## offload_client $flags

Made by \`bench/handoff_bench.sh BUILD_DIR $runs${*:+ $*}\` on $(date -u '+%Y-%m-%d %H:%M') UTC in $(( $(date +%s) - started )) s.

- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) vCPUs, Linux $(uname -r)
- build: $($compiler --version | head -n 1), -O2
- load average (1, 5, 15 min) before the run: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)
- library: asio_waker at $(git -C "$root" log -1 --format='%h (%cs)' 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD -- include bench example 2>/dev/null || echo ' (with uncommitted changes)')

Medians of $runs runs per hand-off; "vs waker" is the ratio of median requests/s; "best"
is the fastest run (the least disturbed by other load).

| hand-off | median req/s | vs waker | best req/s | median p50 (us) | median p99 (us) | runs |
|---|---:|---:|---:|---:|---:|---:|
EOF
awk -v order="$handoffs" '
  { n[$1]++; r[$1, n[$1]] = $2; p[$1, n[$1]] = $3; q[$1, n[$1]] = $4 }
  function median(a, h, k,   i, j, t, v) {
    for (i = 1; i <= k; ++i) v[i] = a[h, i]
    for (i = 1; i <= k; ++i) for (j = i + 1; j <= k; ++j) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
  }
  END {
    count = split(order, names, " ")
    base = median(r, "waker", n["waker"])
    for (i = 1; i <= count; ++i) {
      h = names[i]; m = median(r, h, n[h])
      best = 0; for (j = 1; j <= n[h]; ++j) if (r[h, j] > best) best = r[h, j]
      printf "| %s | %d | %.2f | %d | %d | %d | %d |\n", h, m, m / base, best, median(p, h, n[h]), median(q, h, n[h]), n[h]
    }
  }' "$results"
