#!/usr/bin/env python3
"""Measures, offline, a second opinion for `likeness sort`: a linear classifier over the
shipped ImageNet EfficientNet-Lite0 features (which fine-tuning never changed) joined with the
model's calibrated class proxies, against the proxies alone, on the same kept models.

usage: scripts/sort_second_opinion.py MODEL LIBRARY_INDEX INBOX_INDEX \
           LIBRARY_IMAGENET_INDEX INBOX_IMAGENET_INDEX [UNKNOWN_CLASS]
  MODEL, LIBRARY_INDEX, INBOX_INDEX  as for scripts/sort_scores.py (a model trained with
                                     --holdout 0.1 on LIBRARY; exact indexes made with it)
  *_IMAGENET_INDEX                   `likeness index --exact --model imagenet` of the same
                                     folders (224-px Lite0 features); photos are matched by
                                     file name, so the library may be indexed from a copy
  UNKNOWN_CLASS                      for the open-set run: the class the model never saw

The joint opinion, fitted only on the library:
  1. a multinomial logistic regression on the standardised ImageNet features of the photos
     the run trained on (full-batch gradient descent, 300 steps of 0.5, L2 0.01), its
     temperature fitted on the photos the run held out;
  2. the proxies calibrated as `Classifier::calibrate` does (temperature and class biases);
  3. the sum of the two log-probabilities, with a temperature and class biases fitted on
     the held-out photos again.
Prints one JSON object: for the proxies and the joint opinion, the accuracy, the expected
calibration error and coverage/precision at minimum confidences 0.8, 0.85 and 0.9 (closed
run), or the unknown class left unsure, the known photos filed and their precision (open
run), with the fits-no-folder floor applied as `likeness sort` applies it. Needs numpy.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sort_scores as ss  # noqa: E402

PROBE_STEPS = 300
PROBE_RATE = 0.5
PROBE_L2 = 1e-2


def softmax(logits):
    logits = logits - logits.max(1, keepdims=True)
    exps = np.exp(logits)
    return exps / exps.sum(1, keepdims=True)


def logistic_regression(features, labels, classes):
    weight = np.zeros((features.shape[1], classes))
    bias = np.zeros(classes)
    onehot = np.eye(classes)[labels]
    for _ in range(PROBE_STEPS):
        gradient = (softmax(features @ weight + bias) - onehot) / len(features)
        weight -= PROBE_RATE * (features.T @ gradient + PROBE_L2 * weight)
        bias -= PROBE_RATE * gradient.sum(0)
    return weight, bias


def fit_temperature(logits, labels, with_bias):
    rows = np.arange(len(labels))
    nll = lambda t, b: -np.log(softmax(logits / t + b)[rows, labels].clip(1e-12)).sum()
    bias = np.zeros(logits.shape[1])
    temperature = min(np.exp(np.linspace(np.log(0.05), np.log(20), 81)), key=lambda t: nll(t, bias))
    if with_bias:
        for _ in range(3):
            for _ in range(300):
                gradient = softmax(logits / temperature + bias)
                gradient[rows, labels] -= 1
                bias -= gradient.mean(0) + ss.BIAS_PENALTY * bias
                bias -= bias.mean()
            temperature = min(temperature * np.exp(np.linspace(-0.4, 0.4, 31)),
                              key=lambda t: nll(t, bias))
    return temperature, bias


def by_name(header, vectors):
    return {os.path.basename(image["path"]): row for image, row in zip(header["images"], vectors)}


def main():
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__)
    for path in sys.argv[1:6]:
        if not os.path.isfile(path):
            sys.exit(f"{path}: not a file")
    info, proxies = ss.read_model(sys.argv[1])
    names = ss.classifier_info(info)["classes"]
    library, library_vectors = ss.read_index(sys.argv[2])
    inbox, inbox_vectors = ss.read_index(sys.argv[3])
    library_imagenet = by_name(*ss.read_index(sys.argv[4]))
    inbox_imagenet = by_name(*ss.read_index(sys.argv[5]))
    unknown = sys.argv[6] if len(sys.argv) == 7 else None

    paths = [image["path"] for image in library["images"]]
    labels = np.array([names.index(image["class"]) for image in library["images"]])
    held = ss.held_out(paths, labels, len(names))
    truth_names = [os.path.basename(i["path"]).split("--")[0] for i in inbox["images"]]
    truth = np.array([names.index(n) if n in names else -1 for n in truth_names])
    features = np.stack([library_imagenet[os.path.basename(p)] for p in paths])
    inbox_features = np.stack([inbox_imagenet[os.path.basename(i["path"])] for i in inbox["images"]])

    temperature, bias, fits_below = ss.calibrate(library_vectors[held] @ proxies.T, labels[held], True)
    cosines = inbox_vectors @ proxies.T
    proxies_held = np.log(softmax((library_vectors[held] @ proxies.T) / temperature + bias))
    proxies_inbox = np.log(softmax(cosines / temperature + bias))

    trained = ~held
    mean, scale = features[trained].mean(0), features[trained].std(0) + 1e-6
    weight, probe_bias = logistic_regression((features[trained] - mean) / scale, labels[trained], len(names))
    probe_held = ((features[held] - mean) / scale) @ weight + probe_bias
    probe_inbox = ((inbox_features - mean) / scale) @ weight + probe_bias
    probe_temperature, _ = fit_temperature(probe_held, labels[held], False)
    probe_held = np.log(softmax(probe_held / probe_temperature))
    probe_inbox = np.log(softmax(probe_inbox / probe_temperature))
    joint_temperature, joint_bias = fit_temperature(proxies_held + probe_held, labels[held], True)

    fits_none = cosines.max(1) < fits_below
    out = {"held_out": int(held.sum())}
    opinions = {
        "proxies": softmax(proxies_inbox),
        "imagenet probe": softmax(probe_inbox),
        "joint": softmax((proxies_inbox + probe_inbox) / joint_temperature + joint_bias),
    }
    for name, probabilities in opinions.items():
        confidence = probabilities.max(1)
        right = probabilities.argmax(1) == truth
        row = {"accuracy": float(right[truth >= 0].mean())}
        if unknown is None:
            bins = [(confidence > lo) & (confidence <= lo + 0.1) for lo in np.arange(0, 1, 0.1)]
            row["ece"] = float(sum(abs(right[b].mean() - confidence[b].mean()) * b.mean()
                                   for b in bins if b.any()))
            for level in (0.8, 0.85, 0.9):
                filed = (confidence >= level) & ~fits_none
                row[f"at {level}"] = {"coverage": float(filed.mean()),
                                      "precision": float(right[filed].mean()) if filed.any() else None}
        else:
            is_unknown = truth < 0
            unsure = (confidence < 0.9) | fits_none
            filed = ~is_unknown & ~unsure
            row["unknown_unsure"] = float(unsure[is_unknown].mean())
            row["known_filed"] = float(filed.sum() / (~is_unknown).sum())
            row["known_filed_precision"] = float(right[filed].mean()) if filed.any() else None
            score = np.where(fits_none, 1.0, 1 - confidence)
            row["auroc"] = ss.auroc(score[is_unknown], score[~is_unknown])
        out[name] = row
    print(json.dumps(out))


if __name__ == "__main__":
    main()
