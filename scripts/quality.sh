#!/usr/bin/env bash
# Retrieval-quality runs at a fixed wall-clock budget: each named setting is trained with
# `likeness train --max-seconds BUDGET` for each seed, then scored with `likeness eval`
# (gallery: the training split, queries: held-out photos). One JSON line per run.
#
# usage: scripts/quality.sh CLASS_FOLDER TRAIN_PER_CLASS BUDGET_S "SEEDS" NAME="FLAGS" ...
#   e.g. scripts/quality.sh ~/flowers 10 120 "0 1 2" seed="--preset seed" default="--preset default"
# The folder is split per class in file-name order: the first TRAIN_PER_CLASS images train,
# the rest are queries.
set -euo pipefail
source_dir=$1 train_per_class=$2 budget=$3 seeds=$4
shift 4
likeness=${LIKENESS:-target/release/likeness}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for class_dir in "$source_dir"/*/; do
  class=$(basename "$class_dir")
  mkdir -p "$work/train/$class" "$work/queries/$class"
  i=0
  while IFS= read -r file; do
    if ((i < train_per_class)); then dest=train; else dest=queries; fi
    ln -s "$file" "$work/$dest/$class/$(basename "$file")"
    i=$((i + 1))
  done < <(find "$class_dir" -maxdepth 1 -type f | sort)
done
for setting in "$@"; do
  name=${setting%%=*} flags=${setting#*=}
  for seed in $seeds; do
    # shellcheck disable=SC2086 # flags are a list of words on purpose
    train=$("$likeness" train --data "$work/train" --out "$work/model.safetensors" \
      --max-seconds "$budget" --epochs 100000 --seed "$seed" $flags --json 2>/dev/null | tail -n 1)
    eval=$("$likeness" eval --model "$work/model.safetensors" --gallery "$work/train" \
      --queries "$work/queries" --json 2>/dev/null | tail -n 1)
    python3 -c 'import json,sys; t=json.loads(sys.argv[4]); e=json.loads(sys.argv[5]);
print(json.dumps({"setting": sys.argv[1], "flags": sys.argv[2], "seed": int(sys.argv[3]),
  "budget_s": float(sys.argv[6]), "steps": t["steps"], "epochs": t["epochs"], "device": t["device"],
  "recall@1": e["recall@1"], "recall@5": e["recall@5"], "recall@10": e["recall@10"], "map@r": e["map@r"]}))' \
      "$name" "$flags" "$seed" "$train" "$eval" "$budget"
  done
done
