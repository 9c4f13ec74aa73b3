#!/usr/bin/python3
"""Exports the Fashion-MNIST CNN of `kiln train` (tools/fashion_cnn.h) to ONNX (opset 13,
batch 256) for the onnxruntime row of run_peer.sh. Random weights: only the time counts.
Needs Debian's python3-torch and python3-onnx.   export_cnn.py OUT.onnx"""
import sys
import torch
import torch.nn as nn

torch.manual_seed(0)
net = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64 * 7 * 7, 10)).eval()
torch.onnx.export(net, torch.randn(256, 1, 28, 28), sys.argv[1], opset_version=13,
                  input_names=["x"], output_names=["logits"])
print("wrote", sys.argv[1])
