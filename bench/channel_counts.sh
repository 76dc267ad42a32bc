#!/usr/bin/env bash
# channel_bench scenario (c), counted: net instructions (callgrind) per value on one
# thread, send then receive, for every contender that `channel_bench --list-cycle` names.
#
#   bench/channel_counts.sh BINARY OUT_DIR [VALUES]
#
# For each contender and batch size B in 1 and 64: run `BINARY --cycle NAME VALUES B`
# and `BINARY --cycle NAME 0 B` (same program, same warm-up, setup and teardown) under
# callgrind and divide the difference by VALUES (a multiple of 64; default 32000). A cycle
# sends B values through a producer, then receives them: one async_receive_some (the
# channel's async_receive_many; the waker peers' wait, then take everything) or B
# async_receive_one. Also runs each natively (1.28M values) for allocations and ns per
# value. Writes OUT_DIR/channel_cycle.tsv (name, Ir/value B=1, Ir/value B=64, allocs/value
# B=1, B=64, ns/value B=1, B=64), OUT_DIR/channel_cycle.md (the table) and
# OUT_DIR/callgrind_channel_NAME.txt (callgrind_annotate --inclusive=yes, B=64) for the
# asio_waker contenders.
set -euo pipefail

bin=${1:?usage: channel_counts.sh BINARY OUT_DIR [VALUES]}
out=${2:?usage: channel_counts.sh BINARY OUT_DIR [VALUES]}
values=${3:-32000}
values=$(( (values + 63) / 64 * 64 ))
native_values=${NATIVE_VALUES:-1280000}
mkdir -p "$out"

command -v valgrind >/dev/null 2>&1 || "$(dirname "${BASH_SOURCE[0]}")/../tools/require-packages" valgrind

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ir() {  # total instructions of one run: NAME VALUES BATCH
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$1.$2.$3.out" "$bin" --cycle "$1" "$2" "$3" \
    >/dev/null 2>"$tmp/vg.log" || { cat "$tmp/vg.log" >&2; return 1; }
  awk '/^summary:/ {print $2}' "$tmp/cg.$1.$2.$3.out"
}
native() {  # "allocs ns" per value of one native run: NAME BATCH
  "$bin" --cycle "$1" "$native_values" "$2" |
    sed -n 's/.*allocs_per_value=\([^ ]*\) ns_per_value=\([^ ]*\).*/\1 \2/p'
}

tsv="$out/channel_cycle.tsv"
: >"$tsv"
for name in $("$bin" --list-cycle); do
  row=$name
  for b in 1 64; do
    i0=$(ir "$name" 0 "$b"); i1=$(ir "$name" "$values" "$b")
    row+=$'\t'$(awk -v a="$i0" -v b="$i1" -v n="$values" 'BEGIN { printf "%.1f", (b - a) / n }')
  done
  read -r al1 ns1 <<<"$(native "$name" 1)"
  read -r al64 ns64 <<<"$(native "$name" 64)"
  printf '%s\t%s\t%s\t%s\t%s\n' "$row" "$al1" "$al64" "$ns1" "$ns64" >>"$tsv"
  if [[ "$name" == aw_* ]]; then
    callgrind_annotate --inclusive=yes "$tmp/cg.$name.$values.64.out" 2>/dev/null |
      head -n 80 >"$out/callgrind_channel_$name.txt" || true
  fi
  echo "channel cycle: $(tail -n 1 "$tsv")" >&2
done

awk -F'\t' -v values="$values" -v nv="$native_values" '
  { name[NR] = $1; i1[NR] = $2; i64[NR] = $3; a1[NR] = $4; a64[NR] = $5; n1[NR] = $6; n64[NR] = $7
    if ($1 == "mc_waker") { m1 = $2; m64 = $3 }
    if ($1 == "mc_post_per_value") { p1 = $2; p64 = $3 } }
  function r(x, b) { return b == "" || b == 0 ? "n/a" : sprintf("%.2f", x / b) }
  END {
    print "#### (c) one thread, send then receive: instructions per value"
    print ""
    printf "One `io_context::run()`; a cycle sends B values through a producer, then receives them (one `async_receive_some`: the channel'"'"'s `async_receive_many(out, 1024)`, the waker peers'"'"' wait then take everything; or B `async_receive_one`). "
    printf "Net per value: (callgrind run with %d values - run with 0) / %d, same binary, same warm-up (deterministic). ", values, values
    printf "Allocations and ns per value: native run of %d values. Every receive completes through a posted completion.\n", nv
    print ""
    print "| contender | instr/value B=1 | x mc_waker | x mc_post_per_value | instr/value B=64 | x mc_waker | allocs/value B=1 | allocs/value B=64 | ns/value B=1 | ns/value B=64 |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= NR; ++i)
      printf "| %s | %.0f | %s | %s | %.0f | %s | %s | %s | %s | %s |\n", name[i], i1[i], r(i1[i], m1), r(i1[i], p1), i64[i], r(i64[i], m64), a1[i], a64[i], n1[i], n64[i]
  }' "$tsv" >"$out/channel_cycle.md"
cat "$out/channel_cycle.md"
