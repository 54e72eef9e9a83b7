#!/bin/bash
# Does pretraining carry over? Fine-tunes each built-in base model and the same
# architecture from random initialisation on the fortunes classification set
# (data/examples), with identical data, seed and hyper-parameters, and prints
# the validation accuracy at each epoch end (compiled_results.csv).
#   scripts/pretrain_carryover.sh [MODEL...]   (default: ada curie)
set -euo pipefail
cd "$(dirname "$0")/.."
models=("$@"); [ ${#models[@]} -gt 0 ] || models=(ada curie)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for m in "${models[@]}"; do
  cfg=$(/usr/bin/python3 -c "import json,sys; c=json.load(open('data/models/$m/config.json')); print('%d,%d,%d,%d' % (c['n_layer'], c['n_head'], c['n_embd'], c['n_positions']))")
  for start in "$m" "random:$cfg"; do
    out="$tmp/$(echo "$start" | tr ':,' '__')"
    ./tunery train --model "$start" --train data/examples/fortunes_train.jsonl \
      --validation data/examples/fortunes_valid.jsonl --out "$out" --n-epochs 3 --batch-size 8 \
      --learning-rate-multiplier 1 --seed 1 --truncate left --compute-classification-metrics \
      --classification-n-classes 3 >/dev/null 2>&1
    /usr/bin/python3 - "$out.work/compiled_results.csv" "$m" "$start" <<'PY'
import csv, json, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get("classification/accuracy")]
print(json.dumps({"base": sys.argv[2], "start": "pretrained" if sys.argv[3] == sys.argv[2] else "random",
                  "epoch_end_accuracy": [float(r["classification/accuracy"]) for r in rows],
                  "epoch_end_valid_loss": [float(r["validation_loss"]) for r in rows if r["validation_loss"]]}))
PY
  done
done
