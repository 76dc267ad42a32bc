#!/usr/bin/env bash
# Run every benchmark scenario and write the results.
#
#   bench/run.sh [--reps N] [--quick] [--build-dir DIR] [--out DIR]
#                [--skip-waker] [--skip-channel]
#
# Builds bench/ standalone (cmake -S bench, Release, -O2) into build-bench/ unless
# --build-dir points at an existing build with waker_bench and channel_bench in it (for
# example the root build configured with -DASIO_WAKER_BUILD_BENCH=ON: --build-dir
# build/bench).
# Writes (default --out doc/bench):
#   results.md            waker_bench: all tables (Markdown), the machine and the command
#   burst_consumer.png    (b) consumer wake-ups/s vs producer threads
#   burst_producer.png    (b) producer wake() calls/s vs producer threads
#   wake_alone.png        (d) ns per wake() call vs threads
#   channel_results.md    channel_bench: all tables, the machine and the command
#   channel_stream.png    channel (s) stream: values/s vs producer threads
#   data/                 raw medians (TSV) and callgrind_annotate of the asio_waker cycles
# Takes about 6 minutes (waker_bench) plus about 2 (channel_bench) on 2 cores with the
# defaults. Installs valgrind, strace, gnuplot-nox and, for channel_bench's moodycamel
# contenders, libconcurrentqueue-dev from Debian if they are missing
# (tools/require-packages; without libconcurrentqueue-dev those contenders are left out).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=5
quick=
build=
out="$root/doc/bench"
cycle_iters=20000
channel_values=32000
do_waker=1
do_channel=1
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2 ;;
    --quick) quick=--quick; cycle_iters=2000; channel_values=6400; shift ;;
    --build-dir) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --skip-waker) do_waker=; shift ;;
    --skip-channel) do_channel=; shift ;;
    *) echo "usage: $0 [--reps N] [--quick] [--build-dir DIR] [--out DIR] [--skip-waker] [--skip-channel]" >&2; exit 2 ;;
  esac
done

need() { command -v "$1" >/dev/null 2>&1 || "$root/tools/require-packages" "$2"; }
need gnuplot gnuplot-nox
need valgrind valgrind
need strace strace
if [ -n "$do_channel" ]; then
  # A bench-only peer: without it channel_bench leaves the mc_* contenders out.
  "$root/tools/require-packages" libconcurrentqueue-dev ||
    echo "run.sh: no libconcurrentqueue-dev: channel_bench runs without the moodycamel contenders" >&2
fi

if [ -z "$build" ]; then
  build="$root/build-bench"
  cmake -S "$root/bench" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j 2 --target ${do_waker:+waker_bench} ${do_channel:+channel_bench} >/dev/null
fi
bin="$build/waker_bench"
cbin="$build/channel_bench"
if [ -n "$do_waker" ] && [ ! -x "$bin" ]; then
  echo "no waker_bench in $build" >&2; exit 1
fi
if [ -n "$do_channel" ] && [ ! -x "$cbin" ]; then
  echo "no channel_bench in $build" >&2; exit 1
fi

mkdir -p "$out/data"
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
machine_lines() {  # BINARY TABLES: the machine, the build, the calibration
  echo "- machine: ${cpu:-unknown CPU}, $(nproc) vCPUs, $(uname -sr), $(lscpu | sed -n 's/^Hypervisor vendor:[[:space:]]*/hypervisor /p')"
  echo "- build: $("$1" --reps 1 --scenarios none 2>/dev/null | sed -n 's/^- compiler: //p'), -O2"
  sed -n 's/^- machine calibration: /- calibration: /p' "$2"
}

# --- plots ---------------------------------------------------------------
plot() {  # data file, png, title, y label, extra gnuplot settings, [xtics], [xrange]
  local ncol npeer
  ncol=$(head -n 1 "$1" | awk -F'\t' '{print NF}')
  npeer=$(head -n 1 "$1" | tr '\t' '\n' | tail -n +2 | grep -vc '^aw_' || true)
  gnuplot <<GP
set terminal pngcairo size 960,600 font "sans,10" noenhanced
set output "$2"
set title "$3"
set xlabel "threads (2 vCPUs: beyond 2 the cores are time-shared)"
set ylabel "$4"
set logscale x 2
set xrange ${7:-[0.85:19]}
set xtics ${6:-(1, 2, 4, 8, 16)}
$5
set key outside right top
set grid
set datafile separator "\t"
set linetype 1 lc rgb "#9400d3"
set linetype 2 lc rgb "#009e73"
set linetype 3 lc rgb "#56b4e9"
set linetype 4 lc rgb "#e69f00"
set linetype 5 lc rgb "#f0c020"
set linetype 6 lc rgb "#0072b2"
set linetype 7 lc rgb "#d55e00"
set linetype 8 lc rgb "#000000"
set linetype 9 lc rgb "#cc79a7"
set linetype 10 lc rgb "#e51e10"
set linetype 11 lc rgb "#808080"
# peers dashed, asio_waker contenders solid
plot for [i=2:$((npeer + 1))] "$1" using 1:i with linespoints lt (i-1) lw 2 pt (i+3) dt 2 title columnheader(i), \\
     for [i=$((npeer + 2)):$ncol] "$1" using 1:i with linespoints lt (i-1) lw 2 pt (i+3) dt 1 title columnheader(i)
GP
}

if [ -n "$do_waker" ]; then
start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running waker_bench (reps $reps) ..." >&2
"$bin" --reps "$reps" $quick --data-dir "$out/data" >"$out/data/tables.md"
echo "counting instructions and syscalls per cycle ..." >&2
"$root/bench/cycle_counts.sh" "$bin" "$out/data" "$cycle_iters" >/dev/null
elapsed=$(( $(date +%s) - start ))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

plot "$out/data/b_consumer.dat" "$out/burst_consumer.png" "(b) burst: consumer wake-ups/s vs producer threads (higher is better)" "consumer wake-ups/s" "set logscale y 10; set format y '%.0e'"
plot "$out/data/b_producer.dat" "$out/burst_producer.png" "(b) burst: producer wake() calls/s, all producers (higher is better)" "wake() calls/s" "set logscale y 10; set format y '%.0e'"
plot "$out/data/d_ns.dat" "$out/wake_alone.png" "(d) wake() with nobody waiting: ns per call, per thread (lower is better)" "ns per call" "set logscale y 10"

# --- headline table ------------------------------------------------------
headline() {
  awk -F'\t' '
    FILENAME ~ /cycle_counts.tsv$/ { ir[$1] = $2; sc[$1] = $3; order[++n] = $1; next }
    FILENAME ~ /a1.tsv$/ { a1[$1] = $2; if (!($1 in seen)) { seen[$1]; extra[++m] = $1 } next }
    FILENAME ~ /a2.tsv$/ { a2[$1] = $2; next }
    FILENAME ~ /allocs.tsv$/ { fw[$1] = $5; next }
    FILENAME ~ /b_consumer.dat$/ {
      if (FNR == 1) { for (i = 2; i <= NF; ++i) col[i] = $i; next }
      if ($1 == 1) for (i = 2; i <= NF; ++i) b1[col[i]] = $i
      if ($1 == 2) for (i = 2; i <= NF; ++i) b2[col[i]] = $i
      next
    }
    function f(x) { return x == "" ? "n/a" : x }
    function r(x, b) { return (x == "" || b == "" || b == 0) ? "n/a" : sprintf("%.2f", x / b) }
    function k(x) { return x == "" ? "n/a" : sprintf("%.0fk", x / 1000) }
    END {
      print "| contender | instructions/cycle (c) | syscalls/cycle (c) | a1 busy ping-pong ns (x raw_post, x post_resume) | a2 idle ping-pong ns (x raw_post, x post_resume) | allocs per foreign wake (a2) | wake-ups/s, 1 producer (b) | wake-ups/s, 2 producers (b) |"
      print "|---|---:|---:|---:|---:|---:|---:|---:|"
      for (j = 1; j <= m; ++j) {
        c = extra[j]
        printf "| %s | %s | %s | %.0f (%s, %s) | %.0f (%s, %s) | %s | %s | %s |\n", c, (c in ir) ? sprintf("%.0f", ir[c]) : "n/a", (c in sc) ? sprintf("%.2f", sc[c]) : "n/a",
          a1[c], r(a1[c], a1["raw_post"]), r(a1[c], a1["post_resume"]), a2[c], r(a2[c], a2["raw_post"]), r(a2[c], a2["post_resume"]),
          f(fw[c]), k(b1[c]), k(b2[c])
      }
    }' "$out/data/cycle_counts.tsv" "$out/data/a1.tsv" "$out/data/a2.tsv" "$out/data/allocs.tsv" "$out/data/b_consumer.dat"
}

{
  echo "# asio_waker benchmark results"
  echo
  echo "Made by \`bench/run.sh --reps $reps${quick:+ --quick}\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${elapsed} s."
  echo "The channel (issue 9) against its peers: [channel_results.md](channel_results.md)."
  echo
  machine_lines "$bin" "$out/data/tables.md"
  echo "- load average (1, 5, 15 min) before the run: $load_before; after: $load_after (the benchmark itself keeps 1-2 cores busy)"
  echo "- library: asio_waker at $(git -C "$root" log -1 --format='%h %s' 2>/dev/null || echo unknown)"
  echo
  echo "How to read these: bench/README.md. Medians of $reps repetitions unless said otherwise;"
  echo "ratios are of medians. The machine is shared and noisy: thread scenarios vary run to run,"
  echo "the callgrind instruction counts do not."
  echo
  echo "## Headline"
  echo
  headline
  echo
  echo "![burst: consumer wake-ups/s](burst_consumer.png)"
  echo
  echo "![wake() alone: ns per call](wake_alone.png)"
  echo
  echo "![burst: producer wake() calls/s](burst_producer.png)"
  echo
  echo "## All tables"
  echo
  cat "$out/data/cycle_counts.md"
  echo
  cat "$out/data/idle_syscalls.md"
  echo
  sed -n '/^#### /,$p' "$out/data/tables.md"
} >"$out/results.md"
echo "wrote $out/results.md and plots in $out (${elapsed} s)" >&2
fi # do_waker

# --- channel_bench -------------------------------------------------------
if [ -n "$do_channel" ]; then
cstart=$(date +%s)
cload_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running channel_bench (reps $reps) ..." >&2
crc=0
"$cbin" --reps "$reps" $quick --data-dir "$out/data" >"$out/data/channel_tables.md" || crc=$?
echo "counting channel instructions per value ..." >&2
"$root/bench/channel_counts.sh" "$cbin" "$out/data" "$channel_values" >/dev/null
celapsed=$(( $(date +%s) - cstart ))
cload_after=$(cut -d' ' -f1-3 /proc/loadavg)
plot "$out/data/channel_s_values.dat" "$out/channel_stream.png" \
  "channel (s) stream of u64: values/s end to end vs producer threads (higher is better)" \
  "values/s" "set logscale y 10; set format y '%.0e'" "(1, 2, 4, 8, 15, 16)" "[0.85:10]"
{
  echo "# asio_waker channel benchmark results"
  echo
  echo "Made by \`bench/run.sh --reps $reps${quick:+ --quick}\` (channel_bench and channel_counts.sh) on $(date -u '+%Y-%m-%d %H:%M UTC') in ${celapsed} s."
  echo
  machine_lines "$cbin" "$out/data/channel_tables.md"
  sed -n 's/^- stream: /- stream: /p; s/^- moodycamel/- moodycamel/p; s/^- WARNING/- WARNING/p' "$out/data/channel_tables.md"
  echo "- load average (1, 5, 15 min) before the run: $cload_before; after: $cload_after"
  echo "- library: asio_waker at $(git -C "$root" log -1 --format='%h %s' 2>/dev/null || echo unknown)"
  [ "$crc" -eq 0 ] || echo "- **channel_bench reported lost or reordered values (exit $crc): see its stderr**"
  echo
  echo "How to read these: bench/README.md, section channel_bench. Medians of $reps repetitions;"
  echo "ratios are of medians, within this run. The machine is shared and noisy: the thread"
  echo "scenarios vary run to run, the callgrind instruction counts do not."
  echo
  echo "## Headline"
  echo
  sed -n '/^#### (s) stream: values\/s by producer threads/,/^#### (s) stream, /p' "$out/data/channel_tables.md" | sed '$d'
  echo "![stream: values/s vs producer threads](channel_stream.png)"
  echo
  cat "$out/data/channel_cycle.md"
  echo
  awk -F'\t' '
    { i1[$1] = $2; i64[$1] = $3 }
    function v(a, b) { return (a == "" || b == "" || b == 0) ? "n/a" : sprintf("%.2f (%s)", a / b, a <= b ? "met" : "**not met**") }
    END {
      if (!("aw_receive_many" in i1)) exit
      printf "Issue 9 target (c): `aw_receive_many` instructions per value <= `mc_waker`'"'"'s in the same callgrind run: x mc_waker at B=1: %s; at B=64: %s.\n",
        v(i1["aw_receive_many"], i1["mc_waker"]), v(i64["aw_receive_many"], i64["mc_waker"])
    }' "$out/data/channel_cycle.tsv"
  echo
  sed -n '/^#### (p) ping-pong/,$p' "$out/data/channel_tables.md"
  echo
  echo "## Stream tables, per producer count"
  echo
  sed -n '/^#### (s) stream, [0-9]/,/^#### (p) ping-pong/p' "$out/data/channel_tables.md" | sed '$d'
} >"$out/channel_results.md"
echo "wrote $out/channel_results.md and $out/channel_stream.png (${celapsed} s)" >&2
fi # do_channel
