#!/bin/bash
# scripts/fasttext_baseline.sh: score the fortunes classification split with
# Debian's fastText (`fasttext supervised`), the reference number that
# docs/finetune.md puts beside tunery's fine-tune. Same train/validation files
# as the learning test; the separator is stripped and the completion becomes
# a __label__. Prints one JSON line per seed and the median accuracy.
#   usage: scripts/fasttext_baseline.sh [TRAIN.jsonl VALID.jsonl]
set -eu
TRAIN=${1:-data/examples/fortunes_train.jsonl}
VALID=${2:-data/examples/fortunes_valid.jsonl}
command -v fasttext >/dev/null || { echo "fasttext is missing: apt-get install fasttext" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
to_ft() {
  /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.strip(): continue
    o = json.loads(line)
    text = " ".join(o["prompt"].replace("###", " ").split()).lower()
    print("__label__%s %s" % (o["completion"].strip(), text))' "$1"
}
to_ft "$TRAIN" > "$TMP/train.txt"
to_ft "$VALID" > "$TMP/valid.txt"
accs=()
for seed in 1 2 3 4 5; do
  # fastText's supervised defaults except more epochs (the set is tiny) and one thread (reproducible)
  fasttext supervised -input "$TMP/train.txt" -output "$TMP/m" -epoch 25 -lr 0.5 -wordNgrams 2 -thread 1 -seed $seed -verbose 0 >/dev/null
  acc=$(fasttext test "$TMP/m.bin" "$TMP/valid.txt" | awk '/^P@1/ { print $2 }')
  echo "{\"baseline\":\"fasttext supervised\",\"seed\":$seed,\"epoch\":25,\"lr\":0.5,\"wordNgrams\":2,\"validation_accuracy\":$acc}"
  accs+=("$acc")
done
printf '%s\n' "${accs[@]}" | sort -g | awk '{ a[NR] = $1 } END { printf "{\"baseline\":\"fasttext supervised\",\"median_validation_accuracy\":%s,\"runs\":%d}\n", a[int((NR + 1) / 2)], NR }'
