#!/usr/bin/python3
"""Prints kiln's speed over its peers' per row (peer ms / kiln ms: above 1 is kiln faster),
from the interleaved rounds run_peer.sh wrote: the ratio of the minima over rounds, and
the median of the per-round ratios, with each side's minimum in ms.   compare.py DIR"""
import glob, json, os, statistics, sys

d = sys.argv[1]

def load(prefix):
    rounds = []
    for f in sorted(glob.glob(os.path.join(d, prefix + "_*.json"))):
        rows = json.load(open(f))["rows"]
        rounds.append({r["name"]: r["ms"] for r in rows if r.get("ms") and not r.get("error")})
    return rounds

kiln, peers = load("kiln"), {"libtorch": load("libtorch"), "tuned": load("tuned"), "onnxruntime": load("ort")}
peers = {k: v for k, v in peers.items() if v}

def stats(name, peer):
    pairs = [(k[name], p[name]) for k, p in zip(kiln, peer) if name in k and name in p]
    if not pairs:
        return None
    kmin, pmin = min(k for k, _ in pairs), min(p for _, p in pairs)
    return kmin, pmin, pmin / kmin, statistics.median(p / k for k, p in pairs)

names = [n for n in kiln[0]] if kiln else []
head = "| row (float32) | kiln min ms |"
for p in peers:
    head += f" {p} min ms | kiln ÷ {p} (min) | (median) |"
print(head)
print("|---|---:|" + "---:|---:|---:|" * len(peers))
for n in names:
    line, kmin = f"| {n} |", None
    cells = ""
    for p, rounds in peers.items():
        s = stats(n, rounds)
        if s is None:
            cells += " – | – | – |"
            continue
        kmin = s[0]
        cells += f" {s[1]:.3f} | {s[2]:.2f}x | {s[3]:.2f}x |"
    if kmin is None:
        kmin = min(k[n] for k in kiln if n in k)
    print(f"{line} {kmin:.3f} |{cells}")
