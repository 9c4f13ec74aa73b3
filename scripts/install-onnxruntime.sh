#!/usr/bin/env bash
# Installs onnxruntime-node (npm, prebuilt CPU binaries; no install scripts run) into
# tests/onnx_runtime/node_modules, for the ONNX export test's comparison with onnxruntime.
# Without node/npm or the registry, says so and succeeds: the test then skips.
set -uo pipefail
cd "$(dirname "$0")/../tests/onnx_runtime"
if ! command -v npm >/dev/null; then
  echo "install-onnxruntime: npm not found; the onnxruntime comparison will be skipped"
  exit 0
fi
[ -d node_modules/onnxruntime-node ] && exit 0
npm install --ignore-scripts --no-audit --no-fund --no-save onnxruntime-node \
  || echo "install-onnxruntime: npm install failed; the onnxruntime comparison will be skipped"
exit 0
