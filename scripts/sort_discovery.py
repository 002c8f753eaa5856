#!/usr/bin/env python3
"""Measures, offline, whether the inbox itself can tell an unknown class (issue #40, item 2):
photos of a kind none of the folders has are near each other in the inbox and far from the
library, so a "new kind" group is found in the inbox and its photos are left unsure (what
`likeness sort --new-kinds` does: src/engine/sort/new_kind.rs; here with the held-out
photos of the run's training and quantiles to compare). Also measures the bound any
unknown-class detector has on the same photos (`oracle`).

usage: scripts/sort_discovery.py closed PLAN LIBRARY_IMAGENET_INDEX INBOX_IMAGENET_INDEX
       scripts/sort_discovery.py open   PLAN LIBRARY_IMAGENET_INDEX INBOX_IMAGENET_INDEX UNKNOWN
       scripts/sort_discovery.py oracle PLAN UNKNOWN
  PLAN        `likeness sort --second-opinion --min-confidence 0 --dry-run --json` of a model
              trained with --holdout 0.1 (scripts/sort_quality.sh KEEP=DIR keeps them); the
              inbox's files are named TRUECLASS--name.jpg
  *_IMAGENET_INDEX
              `likeness index --exact --model imagenet` of the library (class folders) and of
              the inbox; photos are matched by file name
  UNKNOWN     the class the open run's model never saw
  oracle      PLAN is a closed run's plan (the model was shown UNKNOWN): its guesses of
              UNKNOWN count as unsure, as a perfect unknown-class detector would leave them.
              No detector added to a model that never saw the class can do better.
With ONLY_IN=DIR the inbox is cut to the photos whose names are in DIR (the closed run's
inbox), so that the open run sorts the same inbox as the closed one.

The discovery, fitted on the library and the inbox, never on the true classes:
  1. each inbox photo's novelty: cosine to its 10th nearest other inbox photo minus cosine to
     its 10th nearest library photo (ImageNet features); the photos the run held out get the
     same score against the inbox and the photos it trained on;
  2. the inbox photos above the held-out photos' QUANTILE of that score seed a "new kind";
  3. three rounds of: a logistic regression (balanced classes) on the library's trained
     photos and the "new kind" group, then the group is the inbox photos it puts there
     that are more novel than half the held-out photos;
  4. a photo is filed when the joined confidence reaches the level, it fits a folder, and it
     is not in the group.
One JSON line per (quantile, level): closed: filed and precision with and without the
discovery; open: the unknown class left unsure, the known filed and their precision. Needs
numpy.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sort_scores as ss  # noqa: E402
from sort_second_opinion import by_name, softmax  # noqa: E402

NEIGHBOUR = 10
ROUNDS = 3
FLOOR_QUANTILE = 0.5
QUANTILES = (0.9, 0.95, 0.98)
LEVELS = (0.8, 0.85, 0.9)


def read_plan(path):
    text = open(path).read().strip().split("\n")[-1]
    plan = json.loads(text)["plan"]
    rows = plan["suggestions"]
    return (plan["folders"],
            [os.path.basename(row["photo"]) for row in rows],
            np.array([row["confidence"] for row in rows]),
            np.array([row["best_folder"] for row in rows]),
            np.array([row["fits_none"] for row in rows]))


def kth_cosine(queries, references):
    cosines = queries @ references.T
    return -np.sort(-cosines, 1)[:, NEIGHBOUR - 1]


def logistic_regression(features, labels, classes, steps=300, rate=0.5, l2=0.01):
    weight = np.zeros((features.shape[1], classes))
    bias = np.zeros(classes)
    onehot = np.eye(classes)[labels]
    # Balanced: each class weighs the same, however few photos the group has.
    row_weight = 1.0 / np.bincount(labels, minlength=classes)[labels]
    row_weight /= row_weight.sum()
    for _ in range(steps):
        gradient = (softmax(features @ weight + bias) - onehot) * row_weight[:, None]
        weight -= rate * (features.T @ gradient + l2 * weight)
        bias -= rate * gradient.sum(0)
    return weight, bias


def discover(trained, trained_labels, held, inbox, classes, quantile):
    """The inbox photos put in a "new kind" group (a boolean mask)."""
    within = inbox @ inbox.T
    np.fill_diagonal(within, -np.inf)
    novelty = -np.sort(-within, 1)[:, NEIGHBOUR - 1] - kth_cosine(inbox, trained)
    held_novelty = kth_cosine(held, inbox) - kth_cosine(held, trained)
    group = novelty > np.quantile(held_novelty, quantile)
    floor = np.quantile(held_novelty, FLOOR_QUANTILE)
    mean, scale = trained.mean(0), trained.std(0) + 1e-6
    standard = (trained - mean) / scale
    inbox_standard = (inbox - mean) / scale
    for _ in range(ROUNDS):
        if group.sum() < NEIGHBOUR:
            return np.zeros(len(inbox), bool)
        features = np.concatenate([standard, inbox_standard[group]])
        labels = np.concatenate([trained_labels, np.full(group.sum(), classes)])
        weight, bias = logistic_regression(features, labels, classes + 1)
        group = ((inbox_standard @ weight + bias).argmax(1) == classes) & (novelty > floor)
    return group


def main():
    args = sys.argv[1:]
    if not args or args[0] not in ("closed", "open", "oracle") \
            or len(args) != {"closed": 4, "open": 5, "oracle": 3}[args[0]]:
        sys.exit(__doc__)
    run = args[0]
    folders, names, confidence, best, fits_none = read_plan(args[1])
    truth = np.array([name.split("--")[0] for name in names])
    keep = np.ones(len(names), bool)
    if os.environ.get("ONLY_IN"):
        inside = set(os.listdir(os.environ["ONLY_IN"]))
        keep = np.array([name in inside for name in names])

    if run == "oracle":
        unknown = args[2]
        is_unknown = truth == unknown
        for level in LEVELS:
            filed = keep & (confidence >= level) & ~fits_none & (best != unknown)
            known = keep & ~is_unknown
            print(json.dumps({"run": run, "level": level, "unknown_photos": int((keep & is_unknown).sum()),
                              "unknown_unsure": float(1 - filed[keep & is_unknown].mean()),
                              "known_filed": float(filed[known].mean()),
                              "known_filed_precision": float((best == truth)[filed & known].mean())}))
        return

    library_header, library_vectors = ss.read_index(args[2])
    inbox_features = by_name(*ss.read_index(args[3]))
    library = [(os.path.basename(image["path"]), image["class"], vector)
               for image, vector in zip(library_header["images"], library_vectors)
               if image.get("class") in folders]
    paths = [path for path, _, _ in library]
    labels = np.array([folders.index(folder) for _, folder, _ in library])
    features = np.stack([vector for _, _, vector in library])
    held = ss.held_out(paths, labels, len(folders))
    missing = [name for name in names if name not in inbox_features]
    if missing:
        sys.exit(f"{len(missing)} inbox photos are not in {args[3]}, e.g. {missing[0]}")
    inbox = np.stack([inbox_features[name] for name in np.array(names)[keep]])
    confidence, best, fits_none, truth = confidence[keep], best[keep], fits_none[keep], truth[keep]
    is_unknown = truth == args[4] if run == "open" else np.zeros(len(truth), bool)
    right = best == truth

    for quantile in QUANTILES:
        group = discover(features[~held], labels[~held], features[held], inbox, len(folders), quantile)
        for level in LEVELS:
            sure = (confidence >= level) & ~fits_none
            row = {"run": run, "quantile": quantile, "level": level, "photos": len(truth),
                   "new_kind": int(group.sum())}
            for name, filed in (("without", sure), ("with", sure & ~group)):
                if run == "closed":
                    row[name] = {"filed": float(filed.mean()), "precision": float(right[filed].mean())}
                else:
                    row[name] = {"unknown_unsure": float(1 - filed[is_unknown].mean()),
                                 "known_filed": float(filed[~is_unknown].mean()),
                                 "known_filed_precision": float(right[filed & ~is_unknown].mean())}
            if run == "open":
                row["new_kind_unknown_share"] = float(is_unknown[group].mean()) if group.any() else None
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
