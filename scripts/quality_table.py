#!/usr/bin/env python3
"""Summarises scripts/quality.sh JSON lines: mean ± spread (max-min)/2 over seeds, per setting."""
import json
import sys
from collections import defaultdict

runs = defaultdict(list)
order = []
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    run = json.loads(line)
    key = (run["setting"], run["budget_s"])
    if key not in runs:
        order.append(key)
    runs[key].append(run)

def fmt(values):
    mean = sum(values) / len(values)
    spread = (max(values) - min(values)) / 2
    return f"{mean:.3f} ± {spread:.3f}"

print("| setting | budget | seeds | steps | recall@1 | recall@5 | mAP@R |")
print("|---|---:|---:|---:|---:|---:|---:|")
for key in order:
    group = runs[key]
    steps = sum(r["steps"] for r in group) / len(group)
    print(f"| {key[0]} | {key[1]:.0f} s | {len(group)} | {steps:.0f} | {fmt([r['recall@1'] for r in group])} | "
          f"{fmt([r['recall@5'] for r in group])} | {fmt([r['map@r'] for r in group])} |")
