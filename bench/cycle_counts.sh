#!/usr/bin/env bash
# Scenario (c), counted: net instructions (callgrind) and syscalls (strace) per
# single-thread wake/wait cycle, for every contender that runs in one io_context.
#
#   bench/cycle_counts.sh BINARY OUT_DIR [ITERS]
#
# For each contender: run `BINARY --cycle NAME ITERS` and `BINARY --cycle NAME 0`
# (same program, same 1000 warm-up cycles, same setup and teardown) and divide the
# difference by ITERS. Writes OUT_DIR/cycle_counts.tsv (name, Ir/cycle, syscalls/cycle,
# allocs/cycle), OUT_DIR/cycle_counts.md (the table), and, for the asio_waker
# contenders, OUT_DIR/callgrind_NAME.txt (callgrind_annotate --inclusive=yes).
set -euo pipefail

bin=${1:?usage: cycle_counts.sh BINARY OUT_DIR [ITERS]}
out=${2:?usage: cycle_counts.sh BINARY OUT_DIR [ITERS]}
iters=${3:-20000}
strace_iters=${STRACE_ITERS:-$iters}
mkdir -p "$out"

need() {  # install a Debian package if its command is missing
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "installing $2 (for $1)" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q "$2" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "$2" >/dev/null; }
    else sudo apt-get install -y -q "$2" >/dev/null; fi
  fi
}
need valgrind valgrind
need callgrind_annotate valgrind
need strace strace

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ir() {  # total instructions of one run
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$1.$2.out" "$bin" --cycle "$1" "$2" >/dev/null 2>"$tmp/vg.log" \
    || { cat "$tmp/vg.log" >&2; return 1; }
  awk '/^summary:/ {print $2}' "$tmp/cg.$1.$2.out"
}
sys() {  # total syscalls of one run (all threads)
  strace -f -c -o "$tmp/st.$1.$2.txt" "$bin" --cycle "$1" "$2" >/dev/null
  awk '$NF == "total" {print $4}' "$tmp/st.$1.$2.txt"
}

tsv="$out/cycle_counts.tsv"
: >"$tsv"
for name in $("$bin" --list); do
  [ "$name" = mutex_condvar ] && continue   # needs two threads
  ir0=$(ir "$name" 0); ir1=$(ir "$name" "$iters")
  s0=$(sys "$name" 0); s1=$(sys "$name" "$strace_iters")
  allocs=$("$bin" --cycle "$name" "$iters" | sed -n 's/.*allocs_per_cycle=//p')
  awk -v n="$name" -v a="$ir0" -v b="$ir1" -v i="$iters" -v s0="$s0" -v s1="$s1" -v si="$strace_iters" -v al="$allocs" \
    'BEGIN { printf "%s\t%.1f\t%.3f\t%s\n", n, (b - a) / i, (s1 - s0) / si, al }' >>"$tsv"
  if [[ "$name" == aw_* ]]; then
    callgrind_annotate --inclusive=yes "$tmp/cg.$name.$iters.out" 2>/dev/null | head -n 80 >"$out/callgrind_$name.txt" || true
  fi
  echo "cycle counts: $(tail -n 1 "$tsv")" >&2
done

awk -F'\t' -v iters="$iters" -v siters="$strace_iters" '
  { name[NR] = $1; ir[NR] = $2; sc[NR] = $3; al[NR] = $4; if ($1 == "raw_post") raw = $2; if ($1 == "post_resume") pr = $2 }
  END {
    print "#### (c) single-thread wake/wait cycle in one io_context::run(): instructions, syscalls, allocations"
    print ""
    printf "Net per cycle: (run with %d cycles - run with 0 cycles) / %d, same binary, same 1000 warm-up cycles. ", iters, iters
    printf "Instructions: `valgrind --tool=callgrind` (deterministic: one run). Syscalls: `strace -f -c` (%d cycles). ", siters
    print "Allocations: malloc-level count in the native run. mutex_condvar: n/a (needs two threads)."
    print ""
    print "| contender | instructions/cycle | x raw_post | x post_resume | syscalls/cycle | allocations/cycle |"
    print "|---|---:|---:|---:|---:|---:|"
    for (i = 1; i <= NR; ++i)
      printf "| %s | %.0f | %.2f | %.2f | %.2f | %s |\n", name[i], ir[i], ir[i] / raw, ir[i] / pr, sc[i], al[i]
  }' "$tsv" >"$out/cycle_counts.md"
cat "$out/cycle_counts.md"
