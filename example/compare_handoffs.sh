#!/bin/sh
# Measures what the waker buys in the flagship server: offload_server with each hand-off
# (--handoff waker|timer|channel), the three interleaved in every round so that they
# share the machine's conditions, each driven by offload_client for a few seconds.
# Prints every run, then the median requests/s, p50 and p99 per hand-off.
#
# usage: example/compare_handoffs.sh BUILD_DIR [RUNS] [offload_client flags...]
#   e.g. example/compare_handoffs.sh build 5 --connections 4 --seconds 2 --rounds 1
set -eu

build=${1:?usage: $0 BUILD_DIR [RUNS] [offload_client flags...]}
runs=${2:-5}
[ $# -ge 2 ] && shift 2 || shift 1
server=$(find "$build" -type f -name offload_server -perm -u+x | head -n 1)
client=$(find "$build" -type f -name offload_client -perm -u+x | head -n 1)
[ -n "$server" ] && [ -n "$client" ] || { echo "build offload_server and offload_client first" >&2; exit 1; }

results=$(mktemp)
out=$(mktemp)
trap 'rm -f "$results" "$out"' EXIT
for run in $(seq "$runs"); do
  for handoff in waker timer channel; do
    "$server" --handoff "$handoff" > "$out" &
    pid=$!
    port=
    for _ in $(seq 100); do
      port=$(head -n 1 "$out")
      [ -n "$port" ] && break
      sleep 0.1
    done
    line=$("$client" --port "$port" "$@")
    kill -TERM "$pid"
    wait "$pid"
    echo "run $run $handoff: $line"
    # "... req/s N  p50 N us  p99 N us ..." -> handoff req/s p50 p99
    echo "$line" | awk -v h="$handoff" '{
      for (i = 1; i < NF; ++i) {
        if ($i == "req/s") r = $(i + 1); if ($i == "p50") p = $(i + 1); if ($i == "p99") q = $(i + 1)
      }
      print h, r, p, q }' >> "$results"
  done
done

echo
echo "| hand-off | median req/s | median p50 (us) | median p99 (us) | runs |"
echo "|---|---:|---:|---:|---:|"
for handoff in waker timer channel; do
  grep "^$handoff " "$results" | awk -v h="$handoff" '
    { r[NR] = $2; p[NR] = $3; q[NR] = $4 }
    function median(a, n,   i, j, t) {
      for (i = 1; i <= n; ++i) for (j = i + 1; j <= n; ++j) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END { printf "| %s | %d | %d | %d | %d |\n", h, median(r, NR), median(p, NR), median(q, NR), NR }'
done
