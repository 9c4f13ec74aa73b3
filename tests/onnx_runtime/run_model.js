// Runs an ONNX model in onnxruntime (CPU) for tests/onnx_export_test.cpp.
// usage: node run_model.js MODEL INPUT_RAW DTYPE DIMS   (DIMS: comma-separated)
// INPUT_RAW holds the input's elements, little-endian; prints {"dims": [...], "data": [...]}
// of the first output as JSON.
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, rawPath, dtype, dimsArg] = process.argv.slice(2);
  const dims = dimsArg.split(',').map(Number);
  const raw = fs.readFileSync(rawPath);
  const buf = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
  const data = dtype === 'int64' ? new BigInt64Array(buf) : new Float32Array(buf);
  const session = await ort.InferenceSession.create(model);
  const feeds = {[session.inputNames[0]]: new ort.Tensor(dtype, data, dims)};
  const out = (await session.run(feeds))[session.outputNames[0]];
  process.stdout.write(JSON.stringify({dims: out.dims, data: Array.from(out.data, Number)}));
}
main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
