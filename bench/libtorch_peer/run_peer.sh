#!/usr/bin/env bash
# kiln against libtorch on the CPU, interleaved: each round runs `kiln bench --device cpu`,
# libtorch_peer as installed, libtorch_peer tuned (jemalloc preloaded, OpenBLAS-pthread
# first on the library path) and, when present, onnxruntime-node on the CNN inference row;
# then compare.py prints kiln's speed over each peer's with min and median over rounds.
#   bench/libtorch_peer/run_peer.sh [BUILD_DIR=build] [ROUNDS=3] [THREADS=2]
# Needs: libtorch-dev (cmake --build BUILD_DIR --target libtorch_peer kiln_cli), for the
# tuned run libjemalloc2 and libopenblas0-pthread, for onnxruntime python3-torch,
# python3-onnx and `npm install --ignore-scripts --prefix bench/libtorch_peer/ort
# onnxruntime-node` (the folder is git-ignored). Results go to BUILD_DIR/peer/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
rounds=${2:-3}
threads=${3:-2}
out=$build/peer
mkdir -p "$out"
rm -f "$out"/*.json
export OMP_NUM_THREADS=$threads   # both libraries; libtorch's own default is the physical cores
unset KILN_NUM_THREADS
peer=$build/bench/libtorch_peer/libtorch_peer
[ -x "$peer" ] || { echo "run_peer: build it first: cmake --build $build --target libtorch_peer"; exit 2; }
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread
model=$here/ort/fashion_cnn.onnx
if [ -d "$here/ort/node_modules/onnxruntime-node" ] && [ ! -f "$model" ]; then
  /usr/bin/python3 "$here/export_cnn.py" "$model" >/dev/null
fi
{
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u '+%F %H:%M UTC')"
  echo "libblas.so.3 as installed: $(readlink -f /lib/x86_64-linux-gnu/libblas.so.3)"
} | tee "$out/machine.txt"
for r in $(seq 1 "$rounds"); do
  echo "round $r/$rounds, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
  "$build/tools/kiln" bench --device cpu --json "$out/kiln_$r.json" >/dev/null
  "$peer" --json "$out/libtorch_$r.json" >/dev/null
  LD_PRELOAD=$jemalloc LD_LIBRARY_PATH=$openblas "$peer" --json "$out/tuned_$r.json" >/dev/null
  if [ -f "$model" ]; then
    node "$here/ort_cnn.js" "$model" "$threads" 9 >"$out/ort_$r.json"
  fi
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
/usr/bin/python3 "$here/compare.py" "$out"
