#!/usr/bin/env python3
"""Side-by-side table of `kiln bench --json` and shared/bench/pytorch_peer.py's JSON from
one run on the same card: both figures, kiln ÷ PyTorch speed, and kiln's share of the
copy-bandwidth floor for rows that name their bytes. Reads $OUT/kiln_bench.json and
$OUT/peer_bench.json (or the two paths given)."""
import json, os, sys

out = os.environ.get("OUT", "/tmp")
kiln_path = sys.argv[1] if len(sys.argv) > 1 else f"{out}/kiln_bench.json"
peer_path = sys.argv[2] if len(sys.argv) > 2 else f"{out}/peer_bench.json"
kiln = json.load(open(kiln_path))
peer_doc = json.load(open(peer_path))
bandwidth = peer_doc["copy_gbps"] * 1e9
peer = {r["name"]: r for r in peer_doc["rows"]}
print(f"card: {peer_doc['gpu']}  copy ceiling {peer_doc['copy_gbps']:.0f} GB/s  "
      f"bf16 peak {peer_doc['bf16_tflops']:.0f} TFLOP/s")
print(f"{'op':42s} {'kiln ms':>9s} {'torch ms':>9s} {'speedup':>8s} {'kiln floor%':>11s}")
for row in kiln["rows"]:
    name, theirs = row["name"], peer.get(row["name"])
    if row.get("error"):
        print(f"{name:42s} {'n/a':>9s}   {row['error'][:50]}")
        continue
    ms = row["ms"]
    floor = f"{100 * (row['bytes'] / bandwidth) / (ms / 1e3):10.0f}%" if row.get("bytes") else ""
    if theirs:
        print(f"{name:42s} {ms:9.4f} {theirs['ms']:9.4f} {theirs['ms'] / ms:7.2f}x {floor:>11s}")
    else:
        print(f"{name:42s} {ms:9.4f} {'-':>9s} {'':8s} {floor:>11s}")
