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
# Also syscalls per idle ping-pong round trip (a2), both threads, the producer's sleep
# excluded: OUT_DIR/idle_syscalls.tsv and .md.
set -euo pipefail

bin=${1:?usage: cycle_counts.sh BINARY OUT_DIR [ITERS]}
out=${2:?usage: cycle_counts.sh BINARY OUT_DIR [ITERS]}
iters=${3:-20000}
strace_iters=${STRACE_ITERS:-$iters}
mkdir -p "$out"

need() {  # install a Debian package if its command is missing
  command -v "$1" >/dev/null 2>&1 || "$(dirname "${BASH_SOURCE[0]}")/../tools/require-packages" "$2"
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

# --- syscalls per idle round trip (a2) ---
idle_iters=${IDLE_ITERS:-2000}
itsv="$out/idle_syscalls.tsv"
: >"$itsv"
for name in $("$bin" --list); do
  for n in 0 "$idle_iters"; do
    strace -f -c -e 'trace=!clock_nanosleep,nanosleep,sched_yield' -o "$tmp/ist.$name.$n.txt" "$bin" --idle-pingpong "$name" "$n" >/dev/null
  done
  awk -v n="$name" -v i="$idle_iters" -v f0="$tmp/ist.$name.0.txt" -v f1="$tmp/ist.$name.$idle_iters.txt" '
    function calls(f,   line, a, k, tot) {
      while ((getline line < f) > 0) {
        k = split(line, a, " ")
        if (k >= 5 && a[1] ~ /^[0-9.]+$/ && a[k] != "total") tot[a[k]] += a[4]
      }
      close(f)
      for (k in tot) c[f, k] = tot[k]
    }
    BEGIN {
      calls(f0); calls(f1)
      for (key in c) { split(key, p, SUBSEP); names[p[2]] }
      out = ""; sum = 0
      for (s in names) {
        d = (c[f1, s] - c[f0, s]) / i
        sum += d
        if (d >= 0.05) out = out sprintf("%s%s %.2f", out == "" ? "" : ", ", s, d)
      }
      printf "%s\t%.2f\t%s\n", n, sum, out
    }' >>"$itsv"
  echo "idle syscalls: $(tail -n 1 "$itsv")" >&2
done
{
  echo "#### (a2) idle ping-pong: syscalls per round trip"
  echo
  echo "Both threads, \`strace -f -c\`, (run with $idle_iters round trips - run with 0) / $idle_iters; excluded: the producer's sleep before each wake (clock_nanosleep) and the harness's spin-wait yields (sched_yield)."
  echo
  echo "| contender | syscalls per round trip | of which (>= 0.05 per round trip) |"
  echo "|---|---:|---|"
  awk -F'\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$itsv"
} >"$out/idle_syscalls.md"

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
