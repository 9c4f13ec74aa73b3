#!/usr/bin/env bash
# ThreadSanitizer over the threaded tests (tests/test_threads.cpp): the shared default
# generator and concurrent backward() into one leaf; the profiler recording from several
# threads (test_profiler) and the GPU-metrics sampling thread (test_gpu_monitor). One OpenMP thread, because libgomp
# is not instrumented and its barriers would read as races.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_TSAN:-build-tsan}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1" \
  -DKILN_WITH_CUDA=OFF -DKILN_BUILD_BENCH=OFF -DKILN_SANITIZE=thread >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target test_threads test_profiler test_gpu_monitor
for t in test_threads test_profiler test_gpu_monitor; do
  OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "$BUILD/tests/$t" --gtest_brief=1
done
