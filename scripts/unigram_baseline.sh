#!/bin/bash
# The unigram baseline the base-model cards compare against: the perplexity on
# the held-out slice of a model that predicts every token from its training-set
# frequency alone (add-one smoothing over the 50257-token vocabulary).
#   scripts/unigram_baseline.sh [CORPUS_DIR]   (default build/corpus) → prints one JSON line
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build/corpus}"
[ -s "$dir/train.txt" ] || scripts/build_corpus.sh "$dir" >/dev/null
./tunery tokenize --allow-special <"$dir/train.txt" >"$dir/train.ids"
./tunery tokenize --allow-special <"$dir/valid.txt" >"$dir/valid.ids"
/usr/bin/python3 - "$dir" <<'PY'
import collections, json, math, sys
d = sys.argv[1]
train = open(d + "/train.ids").read().split()
valid = open(d + "/valid.ids").read().split()
c = collections.Counter(train)
V, N = 50257, len(train)
nll = -sum(math.log((c[t] + 1) / (N + V)) for t in valid) / len(valid)
print(json.dumps({"baseline": "unigram", "train_tokens": N, "valid_tokens": len(valid),
                  "valid_loss": round(nll, 4), "valid_perplexity": round(math.exp(nll), 1)}))
PY
