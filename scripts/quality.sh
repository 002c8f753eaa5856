#!/usr/bin/env bash
# Retrieval-quality runs at a fixed wall-clock budget: each named setting is trained with
# `likeness train --max-seconds BUDGET` for each seed, then scored with `likeness eval`
# (gallery: the training folder, queries: held-out photos). One JSON line per run.
#
# usage: scripts/quality.sh CLASS_FOLDER QUERIES BUDGET_S "SEEDS" NAME="FLAGS" ...
#   QUERIES is either a class folder of held-out photos (the whole CLASS_FOLDER trains), or
#   a number N: the folder is split per class in file-name order, the first N images of
#   each class train and the rest are queries.
#   e.g. scripts/quality.sh flowers5-train flowers5-dev 600 "0 1 2" seed="--preset seed" default=""
# EVAL_VARIANTS="NAME=FLAGS;NAME=FLAGS" also scores each trained model with those `eval`
# flags (test-time settings: --mirror-average, --image-size), as settings "NAME+VARIANT".
# RESUME_S=S also goes on training each model with `likeness train --resume` for S seconds
# and scores it again, as setting "NAME+resumed Ss" (steps and seconds counted over both runs).
set -euo pipefail
source_dir=$(realpath "$1") queries=$2 budget=$3 seeds=$4
shift 4
likeness=${LIKENESS:-target/release/likeness}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -d $queries ]]; then
  train_dir=$source_dir query_dir=$queries
else
  train_dir=$work/train query_dir=$work/queries
  for class_dir in "$source_dir"/*/; do
    class=$(basename "$class_dir")
    mkdir -p "$work/train/$class" "$work/queries/$class"
    i=0
    while IFS= read -r file; do
      if ((i < queries)); then dest=train; else dest=queries; fi
      # Copies, not links: a scan does not follow links that leave the folder.
      cp "$file" "$work/$dest/$class/$(basename "$file")"
      i=$((i + 1))
    done < <(find "$class_dir" -maxdepth 1 -type f | sort)
  done
fi
# Scores the model in $work for every eval variant, one JSON line each.
# usage: score NAME FLAGS SEED TRAIN_JSON
score() {
  local name=$1 flags=$2 seed=$3 train=$4 variant label eval_flags started eval eval_s
  IFS=';' read -r -a variants <<<"${EVAL_VARIANTS:-}"
  for variant in "" "${variants[@]}"; do
    label=$name eval_flags=""
    if [[ -n $variant ]]; then
      label=$name+${variant%%=*} eval_flags=${variant#*=}
    fi
    started=$(date +%s.%N)
    # shellcheck disable=SC2086 # flags are a list of words on purpose
    eval=$("$likeness" eval --model "$work/model.safetensors" --gallery "$train_dir" \
      --queries "$query_dir" $eval_flags --json 2>/dev/null | tail -n 1)
    eval_s=$(python3 -c "import sys, time; print(time.time() - float(sys.argv[1]))" "$started")
    # A resumed run's own steps and seconds are added to those of the runs before it.
    python3 -c 'import json,sys; t=json.loads(sys.argv[4]); e=json.loads(sys.argv[5]);
before=t.get("resumed_from") or {"steps": 0, "secs": 0.0, "epochs": 0}
print(json.dumps({"setting": sys.argv[1], "flags": sys.argv[2], "seed": int(sys.argv[3]),
  "budget_s": float(sys.argv[6]),
  "train_s": round(before["secs"] + t["train_secs"], 1), "steps": before["steps"] + t["steps"],
  "epochs": before["epochs"] + t["epochs"], "resumed": t.get("resumed_from") is not None,
  "device": t["device"], "last_epoch_loss": t["epoch_losses"][-1],
  "spread": (t.get("embedding_spreads") or [None])[-1], "warnings": t.get("warnings", []),
  "recall@1": e["recall@1"], "recall@5": e["recall@5"], "recall@10": e["recall@10"], "map@r": e["map@r"],
  "eval_s": round(float(sys.argv[7]), 1), "suspects": len(e.get("suspects", []))}))' \
      "$label" "$flags $eval_flags" "$seed" "$train" "$eval" "$budget_of_run" "$eval_s"
  done
}

for setting in "$@"; do
  name=${setting%%=*} flags=${setting#*=}
  for seed in $seeds; do
    # shellcheck disable=SC2086 # flags are a list of words on purpose
    train=$("$likeness" train --data "$train_dir" --out "$work/model.safetensors" \
      --max-seconds "$budget" --seed "$seed" $flags --json 2>"$work/train.log" | tail -n 1) || {
      echo "{\"setting\": \"$name\", \"seed\": $seed, \"failed\": true}"
      tail -n 3 "$work/train.log" >&2
      continue
    }
    budget_of_run=$budget
    score "$name" "$flags" "$seed" "$train"
    # RESUME_S=S: then `train --resume` the same model for S seconds more and score it again.
    if [[ -n ${RESUME_S:-} ]]; then
      train=$("$likeness" train --data "$train_dir" --resume "$work/model.safetensors" --max-seconds "$RESUME_S" \
        --json 2>"$work/train.log" | tail -n 1) || {
        echo "{\"setting\": \"$name+resumed\", \"seed\": $seed, \"failed\": true}"
        tail -n 3 "$work/train.log" >&2
        continue
      }
      budget_of_run=$((budget + RESUME_S))
      score "$name+resumed ${RESUME_S}s" "$flags --resume" "$seed" "$train"
    fi
  done
done
