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
B=${BUILD:-build-gpu}
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

t0=$(date +%s)
ctest --test-dir "$B" -j "$(nproc)" --output-on-failure --timeout 300 >"$OUT/ctest.log" 2>&1
status "ctest" "rc=$? $(grep -E 'tests passed|tests failed' "$OUT/ctest.log" | tail -1) in $(( $(date +%s) - t0 ))s"
grep -E "^\s*[0-9]+ - .*(Failed|Timeout|Exception)" "$OUT/ctest.log" | head -40
for t in "$B"/tests/test_cuda "$B"/tests/test_ops; do
  [ -x "$t" ] && status "$(basename "$t") skipped" "$("$t" 2>&1 | grep -c '^\[  SKIPPED')"
done

if [ "${MEMCHECK:-0}" = 1 ]; then
  t0=$(date +%s)
  compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 "$B/tests/test_cuda" >"$OUT/memcheck.log" 2>&1
  status "memcheck test_cuda" "rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1) in $(( $(date +%s) - t0 ))s"
fi

for cmd in "$@"; do
  echo "=== $cmd" >>"$OUT/extra.log"
  (cd "$B" && timeout 300 bash -c "$cmd") >>"$OUT/extra.log" 2>&1
  status "extra: ${cmd:0:40}" "rc=$?"
done
tail -c 3000 "$OUT/extra.log" 2>/dev/null
echo "-----"
cat "$OUT/summary.txt"
