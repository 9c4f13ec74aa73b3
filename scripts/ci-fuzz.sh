#!/usr/bin/env bash
# Fuzzes kiln's file readers (tests/fuzz): builds the harnesses with clang's libFuzzer
# under ASan+UBSan, writes the seed corpora with the tests, then runs each harness for
# FUZZ_SECONDS (default 60), two at a time. Any crash, sanitizer report or non-kiln
# exception fails the script; the reproducer is left in $BUILD/fuzz-findings.
# Needs clang-14 and libclang-rt-14-dev (scripts/install-deps.sh --ci).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_FUZZ:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${JOBS:-$(nproc)}
CXX_FUZZ=${FUZZ_CXX:-clang++-14}
HARNESSES=(fuzz_safetensors_bytes fuzz_safetensors_file fuzz_state_dict fuzz_idx)

command -v "$CXX_FUZZ" >/dev/null || { echo "ci-fuzz: $CXX_FUZZ not found; run scripts/install-deps.sh --ci"; exit 1; }
# -O1 with line tables: fast enough to fuzz, quick to build, readable stack traces.
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_FUZZ" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O1 -gline-tables-only" -DKILN_WITH_CUDA=OFF -DKILN_BUILD_BENCH=OFF \
  -DKILN_BUILD_FUZZ=ON -DKILN_SANITIZE=address,undefined \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined" >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target "${HARNESSES[@]}" test_safetensors test_data

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_NUM_THREADS=1
seeds="$BUILD/fuzz-seeds"
rm -rf "$seeds"
KILN_FUZZ_SEEDS="$seeds" "$BUILD/tests/test_safetensors" --gtest_filter='*Seed*' --gtest_brief=1
KILN_FUZZ_SEEDS="$seeds" "$BUILD/tests/test_data" --gtest_filter='*Seed*' --gtest_brief=1

mkdir -p "$BUILD/fuzz-findings"
run_one() {
  local name=$1 seed_dir=$2
  local corpus="$BUILD/fuzz-corpus/$name"
  mkdir -p "$corpus"
  if "$BUILD/tests/fuzz/$name" "$corpus" "$seed_dir" -max_total_time="$SECONDS_EACH" -timeout=10 \
       -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$BUILD/fuzz-findings/$name-" \
       >"$BUILD/fuzz-$name.log" 2>&1; then
    echo "ci-fuzz: $name: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$BUILD/fuzz-$name.log" | tail -1)s"
  else
    echo "ci-fuzz: $name FAILED; log tail:"
    tail -40 "$BUILD/fuzz-$name.log"
    return 1
  fi
}
status=0
run_one fuzz_safetensors_bytes "$seeds/safetensors" & p1=$!
run_one fuzz_safetensors_file "$seeds/safetensors" & p2=$!
wait $p1 || status=1
wait $p2 || status=1
run_one fuzz_state_dict "$seeds/safetensors" & p1=$!
run_one fuzz_idx "$seeds/idx" & p2=$!
wait $p1 || status=1
wait $p2 || status=1
exit $status
