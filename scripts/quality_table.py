#!/usr/bin/env python3
"""Summarises scripts/quality.sh JSON lines: mean ± spread (max-min)/2 over seeds, per setting,
then every run. Usage: scripts/quality_table.py < runs.jsonl"""
import json
import sys
from collections import defaultdict

runs = defaultdict(list)
order = []
failed = []
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    run = json.loads(line)
    if run.get("failed"):
        failed.append(run)
        continue
    key = (run["setting"], run["budget_s"])
    if key not in runs:
        order.append(key)
    runs[key].append(run)


def fmt(values):
    mean = sum(values) / len(values)
    spread = (max(values) - min(values)) / 2
    return f"{mean:.3f} ± {spread:.3f}"


def eval_secs(group):
    """Seconds `likeness eval` took (embedding gallery and queries), when recorded."""
    values = [r["eval_s"] for r in group if "eval_s" in r]
    return f"{sum(values) / len(values):.0f}" if values else "–"


print("| setting | budget | seeds | steps | recall@1 | recall@5 | recall@10 | mAP@R | eval s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in order:
    group = runs[key]
    steps = sum(r["steps"] for r in group) / len(group)
    print(f"| {key[0]} | {key[1]:.0f} s | {len(group)} | {steps:.0f} | {fmt([r['recall@1'] for r in group])} | "
          f"{fmt([r['recall@5'] for r in group])} | {fmt([r['recall@10'] for r in group])} | "
          f"{fmt([r['map@r'] for r in group])} | {eval_secs(group)} |")
print()
print("Per run (seed: steps, epochs, seconds trained, recall@1 / mAP@R, last epoch loss, embedding spread):")
print()
for key in order:
    parts = [f"{r['seed']}: {r['steps']} steps, {r['epochs']} ep, {r.get('train_s', 0):.0f} s, "
             f"{r['recall@1']:.2f} / {r['map@r']:.3f}, loss {r.get('last_epoch_loss', 0):.3f}, "
             f"spread {r.get('spread') or 0:.3f}" for r in runs[key]]
    print(f"* `{key[0]}` {key[1]:.0f} s — " + "; ".join(parts))
for run in failed:
    print(f"* `{run['setting']}` seed {run['seed']}: failed")
