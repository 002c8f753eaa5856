#!/usr/bin/env python3
"""Test-time probes on a trained model's index vectors, with no retraining.

Reads two Likeness index files (exact, format 1) made by the same model: a labelled gallery
(`likeness index --folder TRAIN`) and labelled queries (`likeness index --folder QUERIES`),
and scores recall@1 and mAP@R (the same definitions as `likeness eval`) for:

- the plain ranking (it matches `likeness eval` on the same folders);
- average query expansion (a query plus its k nearest gallery vectors) and database-side
  augmentation (each gallery vector replaced by the mean of its k nearest), k = 2, 5, 10;
- the embedding joined with a colour histogram of the photo (HSV, 12 × 4 × 4 bins, square
  root, unit length), at several weights, and the colour histogram alone;
- the class accuracy the embedding affords: each query given the class of the nearest class
  mean, or the majority of its 10 nearest gallery photos. No ranking that only reorders these
  vectors can put a photo of the right class first much more often than this.

usage: python3 scripts/rerank_probe.py GALLERY.index QUERIES.index
Needs numpy and pillow (the venv of shared/bench/seed_reference.py has both). One JSON line
per probe.
"""

import json
import os
import struct
import sys

import numpy as np
from PIL import Image

MAGIC_LENGTHS = range(4, 16)


def load_index(path):
    """The header (JSON) and the vectors (n × d, float32) of an exact Likeness index."""
    # A FIFO or a device would block or never end; only a plain file is read.
    if not os.path.isfile(path):
        sys.exit(f"{path}: not a file")
    data = open(path, "rb").read()
    for magic_length in MAGIC_LENGTHS:
        try:
            version = struct.unpack("<I", data[magic_length : magic_length + 4])[0]
            header_length = struct.unpack("<Q", data[magic_length + 4 : magic_length + 12])[0]
            start = magic_length + 12
            if version != 1 or start + header_length > len(data):
                continue
            header = json.loads(data[start : start + header_length])
        except (struct.error, ValueError):
            continue
        if isinstance(header, dict) and "dimension" in header:
            vectors = np.frombuffer(data[start + header_length :], dtype="<f4")
            return header, vectors.reshape(-1, header["dimension"])
    sys.exit(f"{path}: not an exact (format 1) Likeness index")


def unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def scores(gallery, gallery_classes, queries, query_classes):
    """recall@1 and mAP@R of cosine ranking (vectors of unit length)."""
    order = np.argsort(-(queries @ gallery.T), axis=1)
    recall_at_1 = float(np.mean(gallery_classes[order[:, 0]] == query_classes))
    average_precisions = []
    for i, query_class in enumerate(query_classes):
        relevant = int(np.sum(gallery_classes == query_class))
        hits = gallery_classes[order[i, :relevant]] == query_class
        precision = np.cumsum(hits) / np.arange(1, relevant + 1)
        average_precisions.append(float(np.sum(precision * hits)) / relevant)
    return recall_at_1, float(np.mean(average_precisions))


def neighbour_mean(rows, gallery, k):
    """Each row replaced by the mean of itself and its k nearest gallery vectors, the
    neighbours weighted by their cosine (for gallery rows, the nearest is the row itself)."""
    similarity = rows @ gallery.T
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    weights = np.take_along_axis(similarity, nearest, axis=1).clip(min=0)
    return unit(rows + np.einsum("nk,nkd->nd", weights, gallery[nearest]))


def colour_histogram(path, hue_bins=12, saturation_bins=4, value_bins=4):
    pixels = np.asarray(Image.open(path).convert("RGB").resize((64, 64)).convert("HSV"))
    pixels = pixels.reshape(-1, 3).astype(np.int64)
    hue = pixels[:, 0] * hue_bins // 256
    saturation = pixels[:, 1] * saturation_bins // 256
    value = pixels[:, 2] * value_bins // 256
    bins = (hue * saturation_bins + saturation) * value_bins + value
    counts = np.bincount(bins, minlength=hue_bins * saturation_bins * value_bins)
    root = np.sqrt(counts / counts.sum())
    return root / np.linalg.norm(root)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    gallery_header, gallery = load_index(sys.argv[1])
    query_header, queries = load_index(sys.argv[2])
    if gallery_header["model_id"] != query_header["model_id"]:
        sys.exit("the two indexes were made by different models")
    gallery_classes = np.array([image["class"] for image in gallery_header["images"]])
    query_classes = np.array([image["class"] for image in query_header["images"]])

    def report(probe, gallery_rows, query_rows):
        recall_at_1, map_at_r = scores(gallery_rows, gallery_classes, query_rows, query_classes)
        print(json.dumps({"probe": probe, "recall@1": round(recall_at_1, 4),
                          "map@r": round(map_at_r, 4)}))

    report("plain", gallery, queries)
    for k in (2, 5, 10):
        expanded = neighbour_mean(queries, gallery, k)
        augmented = neighbour_mean(gallery, gallery, k + 1)
        report(f"query expansion k={k}", gallery, expanded)
        report(f"database augmentation k={k}", augmented, queries)
        report(f"both k={k}", augmented, neighbour_mean(queries, augmented, k))

    gallery_colour = np.stack([colour_histogram(i["path"]) for i in gallery_header["images"]])
    query_colour = np.stack([colour_histogram(i["path"]) for i in query_header["images"]])
    report("colour alone", gallery_colour, query_colour)
    for weight in (0.1, 0.3, 1.0):
        scale = np.sqrt(weight)
        report(f"embedding + colour × {weight}",
               unit(np.hstack([gallery, scale * gallery_colour])),
               unit(np.hstack([queries, scale * query_colour])))

    classes = sorted(set(gallery_classes))
    means = unit(np.stack([gallery[gallery_classes == c].mean(axis=0) for c in classes]))
    nearest_mean = np.array(classes)[np.argmax(queries @ means.T, axis=1)]
    nearest = np.argsort(-(queries @ gallery.T), axis=1)[:, :10]
    votes = [max(classes, key=lambda c: int(np.sum(gallery_classes[row] == c))) for row in nearest]
    print(json.dumps({"probe": "class accuracy",
                      "nearest class mean": round(float(np.mean(nearest_mean == query_classes)), 4),
                      "vote of 10 nearest": round(float(np.mean(np.array(votes) == query_classes)), 4)}))


if __name__ == "__main__":
    main()
