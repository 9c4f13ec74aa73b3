#!/usr/bin/env bash
# Run HERE (the Debian dev machine): downloads the Debian packages the build needs that
# the GPU machine (Ubuntu 24.04 + CUDA, no package registry) lacks, into .debs/ of the
# checkout (git-ignored). scripts/gpu-build.sh unpacks them there with dpkg -x into the
# build folder. Keep the total small: the tree sent to the GPU machine is limited to 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.debs}  # the GPU run reads it from the checkout root (carry .debs)
mkdir -p "$dest"
PACKAGES=(
  libdnnl-dev libdnnl2 ocl-icd-libopencl1   # oneDNN (CPU kernels) and the OpenCL loader it links
  libgtest-dev googletest                   # GoogleTest
  libbenchmark-dev libbenchmark1debian      # Google Benchmark
  nlohmann-json3-dev                        # JSON
  libopenblas-dev libopenblas0 libopenblas0-pthread libopenblas-pthread-dev libgfortran5  # BLAS
)
(cd "$dest" && rm -f ./*.deb && apt-get download "${PACKAGES[@]}")
du -ch "$dest"/*.deb | tail -1
