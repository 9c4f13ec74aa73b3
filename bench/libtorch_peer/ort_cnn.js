// The CNN inference row on onnxruntime-node: batch 256, graph optimisation 'all', the
// given number of intra-op threads, kiln bench's timing rule (median of trials, each at
// least 2 ms). Prints one JSON object.   node ort_cnn.js MODEL.onnx THREADS TRIALS
const path = require('path');
const ort = require(path.join(__dirname, 'ort', 'node_modules', 'onnxruntime-node'));

async function main() {
  const [model, threads = '2', trials = '9'] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all', intraOpNumThreads: Number(threads), interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  const data = new Float32Array(256 * 28 * 28).map(() => Math.random() * 2 - 1);
  const feeds = { x: new ort.Tensor('float32', data, [256, 1, 28, 28]) };
  const now = () => Number(process.hrtime.bigint()) / 1e9;
  await session.run(feeds);
  let t0 = now();
  await session.run(feeds);
  const once = Math.max(now() - t0, 1e-7);
  const perTrial = Math.min(1000, Math.max(1, Math.floor(2e-3 / once)));
  const ts = [];
  for (let t = 0; t < Number(trials); ++t) {
    t0 = now();
    for (let i = 0; i < perTrial; ++i) await session.run(feeds);
    ts.push((now() - t0) / perTrial);
  }
  ts.sort((a, b) => a - b);
  console.log(JSON.stringify({ device: 'cpu', name: `onnxruntime-node ${require(path.join(__dirname, 'ort', 'node_modules', 'onnxruntime-node', 'package.json')).version}`,
    rows: [{ name: 'infer fmnist cnn b256 fp32', ms: ts[Math.floor(ts.length / 2)] * 1e3 }] }));
}
main().catch((e) => { console.error(e); process.exit(1); });
