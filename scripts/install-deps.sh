#!/usr/bin/env bash
# Installs the Debian packages kiln needs, skipping those already present.
# Every dependency comes from Debian; see README.md for what each one is for.
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libdnnl-dev            # oneDNN: CPU matmul, convolution, pooling, normalisation
  libgtest-dev           # GoogleTest: the test suite
  libbenchmark-dev       # Google Benchmark: bench/
  nlohmann-json3-dev     # JSON: safetensors headers, bench --json
  zlib1g-dev             # gzip: Fashion-MNIST IDX files
  dataset-fashion-mnist  # the training data (/usr/share/datasets/fashion-mnist)
  libonnx-dev libprotobuf-dev libonnx-testdata  # ONNX import/export (src/onnx) and its conformance test data
  libgloo-dev            # Gloo: kiln::distributed collectives between CPU processes
)
# --ci adds what only CI's extra checks need: clang's libFuzzer and OpenMP for make fuzz.
if [ "${1:-}" = "--ci" ]; then
  PACKAGES+=(clang-14 libclang-rt-14-dev libomp-14-dev)  # scripts/ci-fuzz.sh
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
