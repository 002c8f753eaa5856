#!/usr/bin/env python3
"""Scores `likeness sort`'s confidence and candidate unknown-class scores offline, from a
kept model and two Likeness indexes made with it, so that calibration variants and
out-of-distribution scores can be compared on the same trained models without training again.

usage: scripts/sort_scores.py MODEL LIBRARY_INDEX INBOX_INDEX [UNKNOWN_CLASS]
  MODEL          a model trained with --holdout 0.1 on LIBRARY (scripts/sort_quality.sh KEEP=DIR)
  LIBRARY_INDEX  `likeness index --model MODEL --folder LIBRARY` (exact index, format 1)
  INBOX_INDEX    the same for the inbox, whose files are named TRUECLASS--name.jpg
  UNKNOWN_CLASS  for the open-set run: the class the model never saw
Prints one JSON object: for the temperature alone and with class biases (the calibration
`Classifier::calibrate` does, repeated here on the held-out photos, which are picked as
`hold_out` picks them), the accuracy, the expected calibration error and the coverage and
precision at each minimum confidence; with UNKNOWN_CLASS, the share of it left unsure at 0.9,
the known photos filed and their precision, and the AUROC of each candidate score. Needs numpy.
"""

import json
import os
import struct
import sys

import numpy as np

HOLDOUT_SHARE = 0.1
BIAS_PENALTY = 0.01
FITS_PERCENTILE = 0.02


def read_index(path):
    data = open(path, "rb").read()
    magic = b"LIKENESS-INDEX\n"
    if not data.startswith(magic):
        sys.exit(f"{path}: not a Likeness index")
    rest = data[len(magic):]
    version, header_len = struct.unpack("<IQ", rest[:12])
    if version != 1:
        sys.exit(f"{path}: an approximate index keeps no vectors (index it with --exact)")
    header = json.loads(rest[12:12 + header_len])
    vectors = np.frombuffer(rest[12 + header_len:], dtype="<f4").reshape(-1, header["dimension"])
    return header, unit(vectors.astype(np.float64))


def read_model(path):
    data = open(path, "rb").read()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    info = json.loads(header["__metadata__"]["likeness.info"])
    tensor = header["classifier.proxies"]
    start, end = tensor["data_offsets"]
    proxies = np.frombuffer(data[8 + size + start:8 + size + end], dtype="<f4")
    return info, unit(proxies.reshape(tensor["shape"]).astype(np.float64))


def classifier_info(info):
    """The ClassifierInfo in a model's description (the object with classes and a temperature)."""
    if isinstance(info, dict):
        if "temperature" in info and "classes" in info:
            return info
        for value in info.values():
            found = classifier_info(value)
            if found:
                return found
    return None


def unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True).clip(1e-12)


def probabilities(cosines, temperature, bias):
    logits = cosines / temperature + bias
    logits -= logits.max(1, keepdims=True)
    exps = np.exp(logits)
    return exps / exps.sum(1, keepdims=True)


def calibrate(cosines, classes, with_bias):
    """Temperature (and class biases), as Classifier::calibrate fits them."""
    rows = np.arange(len(classes))
    nll = lambda t, b: -np.log(probabilities(cosines, t, b)[rows, classes].clip(1e-12)).sum()
    grid = lambda low, high, steps: np.exp(np.linspace(np.log(low), np.log(high), steps + 1))
    best = lambda candidates, b: min(candidates, key=lambda t: nll(t, b))
    bias = np.zeros(cosines.shape[1])
    temperature = best(grid(0.005, 2.0, 40), bias)
    temperature = best(grid(temperature / 1.2, temperature * 1.2, 20), bias)
    if with_bias:
        for _ in range(3):
            for _ in range(500):
                gradient = probabilities(cosines, temperature, bias)
                gradient[rows, classes] -= 1
                bias -= gradient.mean(0) + BIAS_PENALTY * bias
                bias -= bias.mean()
            temperature = best(grid(temperature / 1.5, temperature * 1.5, 30), bias)
    own = np.sort(cosines[rows, classes])
    fits_below = own[int(np.floor(len(own) * FITS_PERCENTILE))]
    return temperature, bias, fits_below


def held_out(paths, labels, classes):
    """The photos `hold_out` (src/engine/train/prepare.rs) held out of training."""
    held = np.zeros(len(labels), bool)
    for k in range(classes):
        members = sorted(np.flatnonzero(labels == k), key=lambda i: paths[i])
        count = len(members)
        take = max(1, round(count * HOLDOUT_SHARE)) if count >= 8 else 0
        for i in range(take):
            held[members[i * count // take + count // (2 * take)]] = True
    return held


def auroc(positive, negative):
    values = np.concatenate([positive, negative])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, ranks) / counts)[inverse]
    n = len(positive)
    return float((ranks[:n].sum() - n * (n + 1) / 2) / (n * len(negative)))


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    for path in sys.argv[1:4]:
        if not os.path.isfile(path):
            sys.exit(f"{path}: not a file")
    info, proxies = read_model(sys.argv[1])
    names = classifier_info(info)["classes"]
    library, library_vectors = read_index(sys.argv[2])
    inbox, inbox_vectors = read_index(sys.argv[3])
    unknown = sys.argv[4] if len(sys.argv) == 5 else None
    labels = np.array([names.index(image["class"]) for image in library["images"]])
    held = held_out([image["path"] for image in library["images"]], labels, len(names))
    truth = np.array([os.path.basename(image["path"]).split("--")[0] for image in inbox["images"]])
    held_cosines = library_vectors[held] @ proxies.T
    cosines = inbox_vectors @ proxies.T
    out = {"held_out": int(held.sum())}
    for name, with_bias in (("temperature", False), ("temperature+bias", True)):
        temperature, bias, fits_below = calibrate(held_cosines, labels[held], with_bias)
        p = probabilities(cosines, temperature, bias)
        guess = np.array(names)[p.argmax(1)]
        confidence = p.max(1)
        unsure = (confidence < 0.9) | (cosines.max(1) < fits_below)
        right = guess == truth
        row = {"temperature": temperature, "bias": bias.round(3).tolist()}
        if unknown is None:
            bins = [(confidence > lo) & (confidence <= lo + 0.1) for lo in np.arange(0, 1, 0.1)]
            row["accuracy"] = float(right.mean())
            row["ece"] = float(sum(abs(right[b].mean() - confidence[b].mean()) * b.mean()
                                   for b in bins if b.any()))
            row["curve"] = [{"min_confidence": t, "coverage": float((confidence >= t).mean()),
                             "precision": float(right[confidence >= t].mean())
                             if (confidence >= t).any() else None}
                            for t in (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)]
        else:
            is_unknown = truth == unknown
            known = ~is_unknown
            filed = known & ~unsure
            row["unknown_unsure"] = float(unsure[is_unknown].mean())
            row["known_filed"] = float(filed.sum() / known.sum())
            row["known_filed_precision"] = float(right[filed].mean()) if filed.any() else None
            scores = {"1 - confidence": 1 - confidence}
            if with_bias:
                scores["energy"] = -temperature * np.log(np.exp(cosines / temperature).sum(1))
                scores["-best cosine"] = -cosines.max(1)
                tenth = -np.sort(-(inbox_vectors @ library_vectors.T), 1)[:, 9]
                scores["10th nearest library photo"] = -tenth
                means = np.stack([library_vectors[labels == k].mean(0) for k in range(len(names))])
                centred = library_vectors - means[labels]
                covariance = centred.T @ centred / len(centred)
                d = covariance.shape[0]
                precision = np.linalg.inv(0.5 * covariance + 0.5 * np.trace(covariance) / d * np.eye(d))
                scores["mahalanobis"] = np.stack(
                    [np.einsum("ij,jk,ik->i", inbox_vectors - m, precision, inbox_vectors - m)
                     for m in means], 1).min(1)
            row["auroc"] = {k: auroc(v[is_unknown], v[known]) for k, v in scores.items()}
        out[name] = row
    print(json.dumps(out))


if __name__ == "__main__":
    main()
