#!/usr/bin/env bash
# test/proofs/ci.sh -- runs every proof of the waker state machine, with fast settings:
#   1. the exhaustive interleaving checker: its litmus self-test, then the real
#      basic_waker_state driven by the real waker_service moves (both hand-offs; SC and
#      weak memory), then the real channel queue and moves (bounded; mutants must fail)
#   2. spin on test/proofs/waker.pml and channel.pml (safety + liveness per scenario,
#      mutants must fail)
#   3. the TSan stress (1, 2, 4, 8 producers)
#   4. the libFuzzer target for a bounded time
#   5. the fault-injection tests (plain and TSan builds)
# Prints the figures and exits non-zero on any failure.
#
# Knobs (environment):
#   PROOFS_STRESS_SECONDS  per producer count (default 2)
#   PROOFS_FUZZ_SECONDS    libFuzzer -max_total_time (default 60)
#   PROOFS_LONG=1          also the heavy interleaving scenarios (millions of executions)
#   PROOFS_JOBS            build parallelism (default: nproc)
#   CXX_PLAIN, CXX_CLANG   compilers (default g++ and clang++)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
SRC=test/proofs
STRESS_SECONDS=${PROOFS_STRESS_SECONDS:-2}
FUZZ_SECONDS=${PROOFS_FUZZ_SECONDS:-60}
JOBS=${PROOFS_JOBS:-$(nproc 2>/dev/null || echo 2)}
CXX_PLAIN=${CXX_PLAIN:-g++}
CXX_CLANG=${CXX_CLANG:-clang++}
B_PLAIN=build-proofs
B_TSAN=build-proofs-tsan
B_FUZZ=build-proofs-fuzz
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

start_all=$SECONDS
failures=()
figures=()
fail() { echo "!!! FAILED: $*" >&2; failures+=("$*"); }
step() { echo; echo "===== proofs: $* ($(date -u +%H:%M:%S))"; }

configure_build() { # dir compiler sanitize targets...
  local dir=$1 cxx=$2 san=$3; shift 3
  cmake -S "$SRC" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
        -DASIO_WAKER_PROOFS_SANITIZE="$san" >"$dir/configure.log" 2>&1 \
    || { cat "$dir/configure.log"; return 1; }
  cmake --build "$dir" -j "$JOBS" --target "$@"
}

# ---- builds ---------------------------------------------------------------------------
step "build (plain $CXX_PLAIN)"
mkdir -p "$B_PLAIN" "$B_TSAN" "$B_FUZZ"
configure_build "$B_PLAIN" "$CXX_PLAIN" "" proofs_checker_selftest proofs_interleave \
  proofs_interleave_channel proofs_fuzz_replay proofs_faults \
  || fail "plain build"

# ---- 1. interleaving checker ------------------------------------------------------------
step "1. exhaustive interleaving checker"
if [[ -x $B_PLAIN/proofs_checker_selftest ]]; then
  "$B_PLAIN/proofs_checker_selftest" --report_level=short | tee "$B_PLAIN/selftest.log"
  ((PIPESTATUS[0] == 0)) || fail "checker self-test (litmus tests of its memory model)"
  figures+=("checker self-test: $(grep -c 'executions, outcomes' "$B_PLAIN/selftest.log") litmus runs with the expected outcome sets")
else
  fail "checker self-test not built"
fi
long=()
[[ ${PROOFS_LONG:-0} == 1 ]] && long=(--long)
if [[ -x $B_PLAIN/proofs_interleave ]]; then
  t0=$SECONDS
  "$B_PLAIN/proofs_interleave" --report_level=short -- "${long[@]}" | tee "$B_PLAIN/interleave.log"
  rc=${PIPESTATUS[0]}
  ((rc == 0)) || fail "interleaving checker (rc $rc)"
  while read -r line; do figures+=("$line"); done < <(grep -E '^interleavings\[' "$B_PLAIN/interleave.log")
  figures+=("mutants caught by the checker: $(grep -c '^mutant .*caught by' "$B_PLAIN/interleave.log") of 7 ($((SECONDS - t0)) s)")
else
  fail "interleaving checker not built"
fi
# The channel: the real queue and handshake (block size 2), bounded search (the bounds
# are printed per scenario; PROOFS_LONG=1 adds a preemption and lifts the stale-read
# bound), and its mutants.
if [[ -x $B_PLAIN/proofs_interleave_channel ]]; then
  t0=$SECONDS
  "$B_PLAIN/proofs_interleave_channel" --report_level=short -- "${long[@]}" \
    | tee "$B_PLAIN/interleave_channel.log" | grep -v '^  \['
  rc=${PIPESTATUS[0]}
  ((rc == 0)) || fail "channel interleaving checker (rc $rc)"
  while read -r line; do figures+=("$line"); done < <(grep -E '^channel\[' "$B_PLAIN/interleave_channel.log")
  n_mut=$(grep -c '^channel mutant .*caught by' "$B_PLAIN/interleave_channel.log")
  n_all=$(grep -cE '^channel mutant .*(caught by|NOT caught)' "$B_PLAIN/interleave_channel.log")
  figures+=("channel mutants caught by the checker: $n_mut of $n_all ($((SECONDS - t0)) s)")
  ((n_mut == n_all && n_all >= 7)) || fail "channel mutants: $n_mut of $n_all caught (7 expected)"
else
  fail "channel interleaving checker not built"
fi

# ---- 2. spin --------------------------------------------------------------------------
step "2. spin model checking of $SRC/waker.pml"
command -v spin >/dev/null || tools/require-packages spin || true
if ! command -v spin >/dev/null; then
  fail "spin missing: install it with: sudo apt-get install -y spin"
else
  SPIN_DIR=$ROOT/$B_PLAIN/spin
  mkdir -p "$SPIN_DIR"
  for s in 1 2 3 4 5 6 7 8; do
    (
      cd "$SPIN_DIR" && rm -f pan pan.* _spin_nvr.tmp
      spin -DSCENARIO=$s -a "$ROOT/$SRC/waker.pml" >spin.log 2>&1 || { cat spin.log; exit 1; }
      cc -O2 -DNOCLAIM -o pan_safety pan.c 2>/dev/null && cc -O2 -o pan_live pan.c 2>/dev/null || exit 1
      ./pan_safety -m200000 >safety.$s.txt 2>&1
      ./pan_live -a -f -m200000 >live.$s.txt 2>&1
      grep -q 'errors: 0' safety.$s.txt && grep -q 'errors: 0' live.$s.txt || { cat safety.$s.txt live.$s.txt; exit 1; }
    ) || { fail "spin scenario $s"; continue; }
    st=$(grep -oE '^ *[0-9]+ states, stored' "$SPIN_DIR/safety.$s.txt" | grep -oE '[0-9]+' | head -1)
    dp=$(grep -oE 'depth reached [0-9]+' "$SPIN_DIR/safety.$s.txt" | grep -oE '[0-9]+')
    lst=$(grep -oE '^ *[0-9]+ states, stored' "$SPIN_DIR/live.$s.txt" | grep -oE '[0-9]+' | head -1)
    ldp=$(grep -oE 'depth reached [0-9]+' "$SPIN_DIR/live.$s.txt" | grep -oE '[0-9]+')
    line="spin scenario $s: safety $st states stored, depth $dp; liveness (acceptance cycles, weak fairness) $lst states, depth $ldp: OK"
    echo "$line"; figures+=("$line")
  done
  # The model must catch its mutants (otherwise it proves nothing).
  caught=0
  for m in 1 2; do
    (
      cd "$SPIN_DIR" && rm -f pan pan.*
      spin -DSCENARIO=3 -DMUTANT=$m -a "$ROOT/$SRC/waker.pml" >/dev/null 2>&1
      cc -O2 -DNOCLAIM -o pan_m pan.c 2>/dev/null && ./pan_m >mutant.$m.txt 2>&1
      grep -q 'errors: 0' mutant.$m.txt && exit 1 || exit 0
    ) && caught=$((caught + 1)) || fail "spin did not catch mutant $m"
  done
  figures+=("spin mutants caught: $caught of 2")

  # The channel's handshake (test/proofs/channel.pml): 5 scenarios, safety + liveness.
  for s in 1 2 3 4 5; do
    (
      cd "$SPIN_DIR" && rm -f pan pan.* _spin_nvr.tmp
      spin -DSCENARIO=$s -a "$ROOT/$SRC/channel.pml" >spin.log 2>&1 || { cat spin.log; exit 1; }
      cc -O2 -DNOCLAIM -o pan_safety pan.c 2>/dev/null && cc -O2 -o pan_live pan.c 2>/dev/null || exit 1
      ./pan_safety -m200000 >channel_safety.$s.txt 2>&1
      ./pan_live -a -f -m200000 >channel_live.$s.txt 2>&1
      grep -q 'errors: 0' channel_safety.$s.txt && grep -q 'errors: 0' channel_live.$s.txt || {
        cat channel_safety.$s.txt channel_live.$s.txt; exit 1; }
    ) || { fail "spin channel scenario $s"; continue; }
    st=$(grep -oE '^ *[0-9]+ states, stored' "$SPIN_DIR/channel_safety.$s.txt" | grep -oE '[0-9]+' | head -1)
    lst=$(grep -oE '^ *[0-9]+ states, stored' "$SPIN_DIR/channel_live.$s.txt" | grep -oE '[0-9]+' | head -1)
    line="spin channel scenario $s: safety $st states stored; liveness (weak fairness) $lst states: OK"
    echo "$line"; figures+=("$line")
  done
  # mutant:scenario pairs (see channel.pml)
  caught=0
  for ms in 1:5 2:5 3:4 4:1; do
    (
      cd "$SPIN_DIR" && rm -f pan pan.*
      spin -DSCENARIO=${ms#*:} -DMUTANT=${ms%:*} -a "$ROOT/$SRC/channel.pml" >/dev/null 2>&1
      cc -O2 -DNOCLAIM -o pan_m pan.c 2>/dev/null && ./pan_m -m200000 >channel_mutant.${ms%:*}.txt 2>&1
      grep -q 'errors: 0' channel_mutant.${ms%:*}.txt && exit 1 || exit 0
    ) && caught=$((caught + 1)) || fail "spin did not catch channel mutant ${ms%:*}"
  done
  figures+=("spin channel mutants caught: $caught of 4")
fi

# ---- 3. TSan stress ---------------------------------------------------------------------
step "build (TSan, $CXX_CLANG)"
configure_build "$B_TSAN" "$CXX_CLANG" thread proofs_stress proofs_faults || fail "TSan build"
step "3. TSan stress, $STRESS_SECONDS s per producer count"
if [[ -x $B_TSAN/proofs_stress ]]; then
  "$B_TSAN/proofs_stress" --report_level=short -- --seconds="$STRESS_SECONDS" 2>&1 | tee "$B_TSAN/stress.log"
  rc=${PIPESTATUS[0]}
  ((rc == 0)) || fail "TSan stress (rc $rc)"
  grep -q 'ThreadSanitizer' "$B_TSAN/stress.log" && fail "TSan reported a problem in the stress test"
  while read -r line; do figures+=("TSan $line"); done < <(grep -E '^stress producers=' "$B_TSAN/stress.log")
  total=$(grep -oE 'ops=[0-9]+' "$B_TSAN/stress.log" | cut -d= -f2 | paste -sd+ | bc 2>/dev/null || echo '?')
  figures+=("TSan stress total operations: $total")
fi

# ---- 4. libFuzzer ---------------------------------------------------------------------
step "build (libFuzzer + ASan + UBSan, $CXX_CLANG)"
configure_build "$B_FUZZ" "$CXX_CLANG" fuzzer fuzz_waker || fail "fuzzer build"
step "4. libFuzzer, $FUZZ_SECONDS s"
if [[ -x $B_FUZZ/fuzz_waker ]]; then
  mkdir -p "$B_FUZZ/corpus" "$B_FUZZ/artifacts"
  "$B_FUZZ/fuzz_waker" -max_total_time="$FUZZ_SECONDS" -max_len=256 -rss_limit_mb=4096 \
      -print_final_stats=1 -artifact_prefix="$B_FUZZ/artifacts/" \
      "$B_FUZZ/corpus" "$SRC/corpus" >"$B_FUZZ/fuzz.log" 2>&1
  rc=$?
  tail -n 15 "$B_FUZZ/fuzz.log"
  ((rc == 0)) || { grep -E 'VIOLATION|ERROR|SUMMARY|Test unit written' "$B_FUZZ/fuzz.log"; fail "libFuzzer (rc $rc)"; }
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$B_FUZZ/fuzz.log" | grep -oE '[0-9]+$')
  cov=$(grep -E '#[0-9]+[[:space:]]+DONE' "$B_FUZZ/fuzz.log" | grep -oE 'cov: [0-9]+' | head -1)
  figures+=("libFuzzer: ${execs:-?} executions in $FUZZ_SECONDS s, $cov, corpus $(ls "$B_FUZZ/corpus" | wc -l) files")
fi

# ---- 5. fault injection -----------------------------------------------------------------
step "5. fault injection (plain, then TSan) + seed corpus replay"
for b in "$B_PLAIN" "$B_TSAN"; do
  if [[ -x $b/proofs_faults ]]; then
    "$b/proofs_faults" --report_level=short 2>&1 | tee "$b/faults.log"
    ((PIPESTATUS[0] == 0)) || fail "fault injection ($b)"
    figures+=("$b: $(grep -E '^faults injected' "$b/faults.log")")
  else
    fail "proofs_faults missing in $b"
  fi
done
if [[ -x $B_PLAIN/proofs_fuzz_replay ]]; then
  "$B_PLAIN/proofs_fuzz_replay" "$SRC/corpus" || fail "fuzz corpus replay"
fi

# ---- 6. the channel (issue 9) --------------------------------------------------------------
# stress_channel.cpp (1/2/4/8 producers x 8 scenarios, plain then TSan), faults_channel.cpp
# (plain then TSan), fuzz_channel.cpp (seed corpus replay, then libFuzzer). Knobs:
#   PROOFS_CHANNEL_STRESS_SECONDS  per configuration under TSan (default: PROOFS_STRESS_SECONDS)
#   PROOFS_CHANNEL_PLAIN_SECONDS   per configuration in the plain build (default 0.5)
#   PROOFS_CHANNEL_FUZZ_SECONDS    libFuzzer -max_total_time (default: PROOFS_FUZZ_SECONDS)
CH_STRESS_SECONDS=${PROOFS_CHANNEL_STRESS_SECONDS:-$STRESS_SECONDS}
CH_PLAIN_SECONDS=${PROOFS_CHANNEL_PLAIN_SECONDS:-0.5}
CH_FUZZ_SECONDS=${PROOFS_CHANNEL_FUZZ_SECONDS:-$FUZZ_SECONDS}
step "6. channel: builds (plain, TSan, libFuzzer)"
configure_build "$B_PLAIN" "$CXX_PLAIN" "" proofs_stress_channel proofs_faults_channel \
  proofs_fuzz_channel_replay || fail "channel: plain build"
configure_build "$B_TSAN" "$CXX_CLANG" thread proofs_stress_channel proofs_faults_channel \
  || fail "channel: TSan build"
configure_build "$B_FUZZ" "$CXX_CLANG" fuzzer fuzz_channel || fail "channel: fuzzer build"
for b in "$B_PLAIN" "$B_TSAN"; do
  secs=$CH_STRESS_SECONDS
  [[ $b == "$B_PLAIN" ]] && secs=$CH_PLAIN_SECONDS
  step "6. channel stress ($b), $secs s per configuration"
  if [[ -x $b/proofs_stress_channel ]]; then
    "$b/proofs_stress_channel" --report_level=short -- --seconds="$secs" 2>&1 | tee "$b/stress_channel.log"
    rc=${PIPESTATUS[0]}
    ((rc == 0)) || fail "channel stress in $b (rc $rc)"
    grep -q 'ThreadSanitizer' "$b/stress_channel.log" && fail "TSan reported a problem in the channel stress"
    acc=$(grep -oE ' accepted=[0-9]+' "$b/stress_channel.log" | cut -d= -f2 | paste -sd+ | bc 2>/dev/null || echo '?')
    ops=$(grep -oE ': ops=[0-9]+' "$b/stress_channel.log" | cut -d= -f2 | paste -sd+ | bc 2>/dev/null || echo '?')
    n=$(grep -c '^stress_channel scenario=' "$b/stress_channel.log")
    figures+=("channel stress ($b): $n configurations x $secs s: $acc values accepted, $ops operations")
  else
    fail "proofs_stress_channel missing in $b"
  fi
  step "6. channel fault injection ($b)"
  if [[ -x $b/proofs_faults_channel ]]; then
    "$b/proofs_faults_channel" --report_level=short 2>&1 | tee "$b/faults_channel.log"
    ((PIPESTATUS[0] == 0)) || fail "channel fault injection ($b)"
    figures+=("channel $b: $(grep -E '^faults injected' "$b/faults_channel.log")")
  else
    fail "proofs_faults_channel missing in $b"
  fi
done
step "6. channel fuzz: seed corpus replay, then libFuzzer $CH_FUZZ_SECONDS s"
if [[ -x $B_PLAIN/proofs_fuzz_channel_replay ]]; then
  "$B_PLAIN/proofs_fuzz_channel_replay" "$SRC/corpus_channel" || fail "channel fuzz corpus replay"
fi
if [[ -x $B_FUZZ/fuzz_channel ]]; then
  mkdir -p "$B_FUZZ/corpus_channel" "$B_FUZZ/artifacts_channel"
  "$B_FUZZ/fuzz_channel" -max_total_time="$CH_FUZZ_SECONDS" -max_len=256 -rss_limit_mb=4096 \
      -print_final_stats=1 -artifact_prefix="$B_FUZZ/artifacts_channel/" \
      "$B_FUZZ/corpus_channel" "$SRC/corpus_channel" >"$B_FUZZ/fuzz_channel.log" 2>&1
  rc=$?
  tail -n 15 "$B_FUZZ/fuzz_channel.log"
  ((rc == 0)) || { grep -E 'VIOLATION|ERROR|SUMMARY|Test unit written' "$B_FUZZ/fuzz_channel.log"; fail "channel libFuzzer (rc $rc)"; }
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$B_FUZZ/fuzz_channel.log" | grep -oE '[0-9]+$')
  cov=$(grep -E '#[0-9]+[[:space:]]+DONE' "$B_FUZZ/fuzz_channel.log" | grep -oE 'cov: [0-9]+' | head -1)
  figures+=("channel libFuzzer: ${execs:-?} executions in $CH_FUZZ_SECONDS s, $cov, corpus $(ls "$B_FUZZ/corpus_channel" | wc -l) files")
else
  fail "fuzz_channel not built"
fi

# ---- summary ----------------------------------------------------------------------------
echo
echo "===== proofs: figures"
printf '  %s\n' "${figures[@]}"
echo "===== proofs: total $((SECONDS - start_all)) s"
if ((${#failures[@]})); then
  echo "===== proofs: ${#failures[@]} FAILED:"
  printf '  %s\n' "${failures[@]}"
  exit 1
fi
echo "===== proofs: all passed"
