#!/usr/bin/env bash
# Issue #27's measurements of `likeness sort`, at a fixed training budget, per seed:
# 1. train on the first TRAIN images of each class of CLASS_FOLDER (file-name order), with
#    10 % of them held out for calibration; the rest of each class is the inbox. Accuracy at
#    full coverage, the precision-coverage curve, and the expected calibration error.
# 2. train on every class but the last; the last class's photos join the inbox of the other
#    classes' held-back photos: the share of the unknown class that lands in "unsure", and
#    the AUROC of the unsure score (1 - confidence, or 1 when it fits no folder).
# Each run's inbox is sorted three times: with the model's class proxies, with the second
# opinion the run fitted (`--second-opinion`; "method" says which), and with it and a new
# kind looked for (`--new-kinds`: the third line, "new_kinds": "done"; its group counts as
# unsure; open run scored at its default level 0.8). The open run's model also sorts the
# closed run's inbox so (the fourth line, "inbox": "closed-run-inbox").
# One JSON line per measurement on stdout.
# usage: scripts/sort_quality.sh CLASS_FOLDER TRAIN BUDGET_S "SEEDS"
# RUNS="closed" (or "open") measures only that run (default: both).
# With KEEP=DIR set, each run's model and plan are also copied there (model-RUN-SEED.*), and
# the work folder's photo layout (train/, train4/, inbox/, inbox-open/) is kept in DIR/photos.
set -euo pipefail
source_dir=$(realpath "$1") train_count=$2 budget=$3 seeds=$4
likeness=${LIKENESS:-target/release/likeness}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
classes=()
for class_dir in "$source_dir"/*/; do classes+=("$(basename "$class_dir")"); done
unset class_dir
last=${classes[-1]}
for class in "${classes[@]}"; do
  mkdir -p "$work/train/$class" "$work/known/$class" "$work/inbox"
  i=0
  while IFS= read -r file; do
    if ((i < train_count)); then
      cp "$file" "$work/train/$class/"
      [[ $class != "$last" ]] && mkdir -p "$work/train4/$class" && cp "$file" "$work/train4/$class/"
    else
      # The inbox is flat; the true class is kept in the name.
      cp "$file" "$work/inbox/$class--$(basename "$file")"
    fi
    i=$((i + 1))
  done < <(find "$source_dir/$class" -maxdepth 1 -type f | sort)
done
# For the open-set run the unknown class's training photos join the inbox too.
mkdir -p "$work/inbox-open"
cp "$work/inbox/"* "$work/inbox-open/"
for file in "$work/train/$last/"*; do cp "$file" "$work/inbox-open/$last--$(basename "$file")"; done
score() { # MODE PLAN_JSON SEED STEPS
  python3 - "$@" <<'PY'
import json, sys
mode, plan_file, seed, steps, unknown = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
# Which inbox: the run's own, or (open run) the closed run's inbox, sorted by the 4-class model.
inbox_name = sys.argv[6] if len(sys.argv) > 6 else "own"
level = float(sys.argv[7]) if len(sys.argv) > 7 else 0.9
plan = json.loads(open(plan_file).read().strip().split("\n")[-1])["plan"]
rows = []
for s in plan["suggestions"]:
    true = s["photo"].split("/")[-1].split("--")[0]
    fits_none = s["unsure"] is not None and "none of the folders" in s["unsure"]
    # A photo of a new kind waits at any level, as one that fits no folder does.
    rows.append((true, s["best_folder"], s["confidence"], fits_none or s.get("new_kind", False)))
if mode == "closed":
    n = len(rows)
    correct = [t == b for t, b, _, _ in rows]
    out = {"measure": "closed", "seed": seed, "steps": steps, "photos": n,
           "accuracy_full_coverage": sum(correct) / n, "method": plan["method"],
           "new_kinds": plan.get("new_kinds", {}).get("looked", "no")}
    # Precision and coverage when filing only photos at least this sure (and fitting a folder).
    curve = []
    for t in [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]:
        filed = [c for (tr, b, conf, none), c in zip(rows, correct) if conf >= t and not none]
        curve.append({"min_confidence": t, "coverage": len(filed) / n,
                      "precision": (sum(filed) / len(filed)) if filed else None})
    out["curve"] = curve
    # Expected calibration error over 10 equal-width confidence bins.
    ece = 0.0
    for k in range(10):
        lo, hi = k / 10, (k + 1) / 10
        b = [(conf, c) for (tr, bf, conf, none), c in zip(rows, correct) if (lo < conf <= hi) or (k == 0 and conf == 0)]
        if b:
            ece += len(b) / n * abs(sum(c for _, c in b) / len(b) - sum(conf for conf, _ in b) / len(b))
    out["ece"] = ece
    at_default = [c for (tr, b, conf, none), c in zip(rows, correct) if conf >= 0.9 and not none]
    out["at_default"] = {"coverage": len(at_default) / n, "precision": (sum(at_default) / len(at_default)) if at_default else None}
else:
    unknown_rows = [r for r in rows if r[0] == unknown]
    known_rows = [r for r in rows if r[0] != unknown]
    unsure = lambda r: r[3] or r[2] < level
    score_of = lambda r: 1.0 if r[3] else 1.0 - r[2]
    pos = [score_of(r) for r in unknown_rows]; neg = [score_of(r) for r in known_rows]
    auroc = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
    out = {"measure": "open", "seed": seed, "steps": steps, "unknown_class": unknown,
           "inbox": inbox_name, "level": level,
           "method": plan["method"], "new_kinds": plan.get("new_kinds", {}).get("looked", "no"),
           "unknown_photos": len(unknown_rows),
           "unknown_unsure": sum(unsure(r) for r in unknown_rows) / len(unknown_rows),
           "unknown_fits_none": sum(r[3] for r in unknown_rows) / len(unknown_rows),
           "known_unsure": sum(unsure(r) for r in known_rows) / len(known_rows),
           # The known photos filed at the default, and the share of them filed right.
           "known_filed": sum(not unsure(r) for r in known_rows) / len(known_rows),
           "known_filed_precision": (sum(r[0] == r[1] for r in known_rows if not unsure(r))
                                     / max(1, sum(not unsure(r) for r in known_rows))),
           "auroc_unsure_score": auroc}
print(json.dumps(out))
PY
}
for seed in $seeds; do
  for run in ${RUNS:-closed open}; do
    if [[ $run == closed ]]; then data=$work/train inbox=$work/inbox; else data=$work/train4 inbox=$work/inbox-open; fi
    train=$("$likeness" train --data "$data" --holdout 0.1 --out "$work/model.safetensors" \
      --max-seconds "$budget" --seed "$seed" --json 2>"$work/train.log" | tail -n 1)
    steps=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["steps"])' "$train")
    "$likeness" sort --model "$work/model.safetensors" --inbox "$inbox" --library "$data" \
      --min-confidence 0 --dry-run --json > "$work/plan.json" 2>"$work/sort.log"
    score "$run" "$work/plan.json" "$seed" "$steps" "$last"
    # The same inbox with the second opinion the run fitted (issue #40).
    "$likeness" sort --model "$work/model.safetensors" --inbox "$inbox" --library "$data" \
      --min-confidence 0 --dry-run --json --second-opinion > "$work/plan-joined.json" 2>>"$work/sort.log"
    score "$run" "$work/plan-joined.json" "$seed" "$steps" "$last"
    # And with a new kind looked for in the inbox too (issue #40, item 2).
    "$likeness" sort --model "$work/model.safetensors" --inbox "$inbox" --library "$data" \
      --min-confidence 0 --dry-run --json --second-opinion --new-kinds > "$work/plan-new-kinds.json" \
      2>>"$work/sort.log"
    score "$run" "$work/plan-new-kinds.json" "$seed" "$steps" "$last" own 0.8
    if [[ $run == open ]]; then
      # The inbox the 5-class model sorted, by the 4-class model (its tulips a quarter).
      "$likeness" sort --model "$work/model.safetensors" --inbox "$work/inbox" --library "$data" \
        --min-confidence 0 --dry-run --json --second-opinion --new-kinds \
        > "$work/plan-same-inbox.json" 2>>"$work/sort.log"
      score "$run" "$work/plan-same-inbox.json" "$seed" "$steps" "$last" closed-run-inbox 0.8
      if [[ -n ${KEEP:-} ]]; then
        mkdir -p "$KEEP" && cp "$work/plan-same-inbox.json" "$KEEP/plan-same-inbox-$seed.json"
      fi
    fi
    if [[ -n ${KEEP:-} ]]; then
      mkdir -p "$KEEP"
      cp "$work/model.safetensors" "$KEEP/model-$run-$seed.safetensors"
      cp "$work/plan.json" "$KEEP/plan-$run-$seed.json"
      cp "$work/plan-joined.json" "$KEEP/plan-joined-$run-$seed.json"
      cp "$work/plan-new-kinds.json" "$KEEP/plan-new-kinds-$run-$seed.json"
      [[ -d $KEEP/photos ]] || cp -r "$work" "$KEEP/photos"
    fi
  done
done
