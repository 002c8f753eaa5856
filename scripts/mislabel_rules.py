#!/usr/bin/env python3
"""Scores other rankings of the mislabel finder on runs of the planted-mistake bench, with
no new training.

usage: python3 scripts/mislabel_rules.py BENCH.json ...
Each file holds the last line that `likeness bench --plant-mislabels 0.02 --json` printed
(one run, one seed). For every rule it prints, over the runs, the photos flagged, the
precision and the recall at 2.25 and 2.5 standard deviations below the mean score, and the
share of planted photos among as many lowest-scored photos as were planted (mean ± half the
range). A low score means a doubtful label. Needs numpy.
"""

import json
import os
import sys

import numpy as np


def standardised(values):
    return (values - values.mean()) / values.std()


def rules(photos):
    """Each rule's score per photo (photos without training evidence left out)."""
    area = standardised(np.array([p["area_under_margin"] for p in photos]))
    late = standardised(np.array([p["late_margin"] for p in photos]))
    # The vote is the share of the 10 nearest photos in another class minus the share in
    # the photo's own; a photo whose 10 nearest are all of its own class has none (−1).
    vote = np.array([-1.0 if p["vote_confidence"] is None else p["vote_confidence"]
                     for p in photos])
    cosines = np.array([p["late_cosines"] for p in photos])
    classes = np.array([p["class"] for p in photos])
    rows = np.arange(len(photos))
    typical = np.array([cosines[classes == c, c].mean() for c in range(cosines.shape[1])])
    others = cosines.copy()
    others[rows, classes] = -np.inf
    return {
        "weighted margin (the default)": late,
        "area + weighted margin + vote": area + late - standardised(vote),
        "best other class over its typical cosine": -(others - typical).max(axis=1),
    }


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    results = {}
    for path in sys.argv[1:]:
        # A FIFO or a device would block or never end; only a plain file is read.
        if not os.path.isfile(path):
            sys.exit(f"{path}: not a file")
        lines = open(path).read().strip().splitlines()
        try:
            run = json.loads(lines[-1])
        except (IndexError, ValueError):
            sys.exit(f"{path}: its last line is not the JSON of `likeness bench --json`")
        photos = [p for p in run["photos"] if p["late_margin"] is not None and p["late_cosines"]]
        planted = np.array([p["planted"] for p in photos])
        total_planted = run["planted"]
        for name, score in rules(photos).items():
            z = standardised(score)
            for below in (2.25, 2.5):
                flagged = z < -below
                right = int(planted[flagged].sum())
                results.setdefault((name, f"{below} sd below"), []).append(
                    (int(flagged.sum()), right / max(1, int(flagged.sum())), right / total_planted))
            lowest = np.argsort(score)[:total_planted]
            share = float(planted[lowest].sum()) / total_planted
            results.setdefault((name, "lowest as many as planted"), []).append(
                (total_planted, share, share))

    def spread(values):
        return f"{np.mean(values):.2f} ± {(max(values) - min(values)) / 2:.2f}"

    print("| rule | listed | flagged | precision | recall |")
    print("|---|---|---:|---:|---:|")
    for (name, listed), runs in results.items():
        flagged, precision, recall = zip(*runs)
        print(f"| {name} | {listed} | {np.mean(flagged):.0f} | {spread(precision)} "
              f"| {spread(recall)} |")


if __name__ == "__main__":
    main()
