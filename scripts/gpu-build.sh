#!/usr/bin/env bash
# Run ON THE GPU MACHINE (Ubuntu 24.04 + CUDA 13 + cuDNN 9, no package registry), from
# the checkout's root: unpacks the Debian packages that scripts/gpu-debs.sh downloaded
# (never into /: into <build>/prefix), configures and builds kiln with CUDA, runs the
# whole suite, optionally the CUDA tests under compute-sanitizer memcheck, then any
# commands given as arguments (run from the build folder, with the library path set).
# Logs go to $OUT (the device tool's output folder) and a short table is printed last.
#   DEBS=../.debs MEMCHECK=1 scripts/gpu-build.sh "./tools/kiln info"
set -uo pipefail
cd "$(dirname "$0")/.."
DEBS=${DEBS:-.debs}
B=$(realpath -m "${BUILD:-build-gpu}")
OUT=${OUT:-/tmp/kiln-gpu-out}
mkdir -p "$OUT" "$B"
P=$PWD/$B/prefix
if [ ! -f "$P/.unpacked" ]; then
  mkdir -p "$P"
  for f in "$DEBS"/*.deb; do
    # The machine's own zlib headers win when present.
    case "$f" in *zlib*) [ -f /usr/include/zlib.h ] && continue ;; esac
    dpkg -x "$f" "$P"
  done
  touch "$P/.unpacked"
fi
LIBDIR=$P/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$LIBDIR:$LIBDIR/openblas-pthread:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
status() { printf '%-28s %s\n' "$1" "$2" >>"$OUT/summary.txt"; }
: >"$OUT/summary.txt"
status "card" "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
status "date" "$(date -u +%FT%TZ)"

t0=$(date +%s)
{ cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_WITH_CUDA=ON -DCMAKE_PREFIX_PATH="$P/usr" \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc && cmake --build "$B" -j "$(nproc)"; } >"$OUT/build.log" 2>&1
rc=$?
status "build" "rc=$rc in $(( $(date +%s) - t0 ))s"
if [ $rc -ne 0 ]; then
  grep -E "error|Error|FAILED|Could not" "$OUT/build.log" | head -40
  tail -20 "$OUT/build.log"
  cat "$OUT/summary.txt"; exit 1
fi

# Each test binary runs once as a whole (ctest would start one process, and so one CUDA
# context, per test: minutes). GTEST_FILTER narrows the run when set.
t0=$(date +%s)
: >"$OUT/tests.log"
for t in "$B"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  (cd "$B/tests" && timeout 300 "$t" --gtest_brief=1 ${GTEST_FILTER:+--gtest_filter="$GTEST_FILTER"}) >"$OUT/$name.tmp" 2>&1
  rc=$?
  pass=$(grep -oE '\[  PASSED  \] [0-9]+' "$OUT/$name.tmp" | grep -oE '[0-9]+$')
  fail=$(grep -oE '\[  FAILED  \] [0-9]+ test' "$OUT/$name.tmp" | grep -oE '[0-9]+' | head -1)
  skip=$(grep -oE '\[  SKIPPED \] [0-9]+' "$OUT/$name.tmp" | grep -oE '[0-9]+$')
  status "$name" "rc=$rc passed=${pass:-0} failed=${fail:-0} skipped=${skip:-0}"
  { echo "=== $name rc=$rc"; cat "$OUT/$name.tmp"; } >>"$OUT/tests.log"
  grep -E '^\[  FAILED  \] [a-z_A-Z]' "$OUT/$name.tmp" | head -30
  rm -f "$OUT/$name.tmp"
done
status "tests" "$(( $(date +%s) - t0 ))s"

if [ "${MEMCHECK:-0}" = 1 ]; then
  t0=$(date +%s)
  : >"$OUT/memcheck.log"
  for run in "test_cuda" "test_ops --gtest_filter=*cuda*"; do
    (cd "$B/tests" && timeout 400 compute-sanitizer --tool memcheck --leak-check no --report-api-errors no --error-exitcode 9 ./$run --gtest_brief=1) >>"$OUT/memcheck.log" 2>&1
    status "memcheck ${run:0:30}" "rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1) in $(( $(date +%s) - t0 ))s"
  done
fi

for cmd in "$@"; do
  echo "=== $cmd" >>"$OUT/extra.log"
  (cd "$B" && timeout 300 bash -c "$cmd") >>"$OUT/extra.log" 2>&1
  status "extra: ${cmd:0:40}" "rc=$?"
done
tail -c 3000 "$OUT/extra.log" 2>/dev/null
echo "-----"
cat "$OUT/summary.txt"
