#!/bin/bash
# Rebuilds tunery's built-in base models (data/models/{ada,babbage,curie,davinci})
# from the Debian-packaged public-domain corpus (scripts/build_corpus.sh), with
# `tunery pretrain`. Each run resumes from its checkpoint in build/pretrain/<name>,
# so the script can be stopped and started again. Writes a model card per model.
#   scripts/build_base_models.sh [NAME...]      (default: all four)
#   STEPS_SCALE=0.5 scripts/build_base_models.sh curie   (shorter runs)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x ./tunery ] || make -s tunery
[ -s build/corpus/train.txt ] || scripts/build_corpus.sh build/corpus >/dev/null
scale="${STEPS_SCALE:-1}"
[ -s build/corpus/unigram.json ] || scripts/unigram_baseline.sh build/corpus >build/corpus/unigram.json

# name  layers,heads,width,context  steps  batch  lr
# Widths stay small: with a 50257-token vocabulary the tied LM head is most of
# the compute and of the bytes at these sizes.
specs="ada      2,2,64,256   1000 8 2e-3
babbage  3,3,96,256   1000 8 1.5e-3
curie    4,4,128,256  1000 8 1e-3
davinci  6,6,192,256  1000 8 8e-4"

names=("$@")
while read -r name cfg steps batch lr; do
  if [ ${#names[@]} -gt 0 ] && [[ ! " ${names[*]} " =~ " $name " ]]; then continue; fi
  steps=$(awk -v s="$steps" -v k="$scale" 'BEGIN{printf "%d", s*k}')
  work="build/pretrain/$name"
  echo "== $name: config $cfg, $steps steps of $batch sequences, peak lr $lr" >&2
  start=$(date +%s)
  [ -f "$work.secs" ] && start=$(( start - $(cat "$work.secs") ))
  ./tunery pretrain --corpus build/corpus/train.txt --valid build/corpus/valid.txt --out "$work" \
    --config "$cfg" --steps "$steps" --batch "$batch" --lr "$lr" --eval-every 250 --checkpoint-every 250 \
    --log-every 50 2>&1 | tee "$work.log" >&2
  secs=$(( $(date +%s) - start ))
  echo "$secs" >"$work.secs"
  dest="data/models/$name"
  mkdir -p "$dest"
  cp "$work"/config.json "$work"/tunery.json "$work"/vocab.json "$work"/merges.txt "$work"/tokenizer.json "$dest"/
  # Ship 16-bit weights (the loader widens F16/BF16 to fp32): half the bytes in git.
  /usr/bin/python3 scripts/safetensors_to_f16.py "$work/model.safetensors" "$dest/model.safetensors"
  /usr/bin/python3 - "$dest" "$name" "$cfg" "$steps" "$batch" "$lr" "$secs" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'PY'
import json, sys, os
dest, name, cfg, steps, batch, lr, secs, cpu = sys.argv[1:]
t = json.load(open(os.path.join(dest, "tunery.json")))
u = json.load(open("build/corpus/unigram.json"))
L, NH, C, T = cfg.split(",")
card = f"""# {name}: tunery built-in base model

A GPT-2-architecture language model pretrained from scratch by `tunery pretrain`
on public-domain and BSD-licensed English text shipped as Debian packages:
the King James Bible (`bible-kjv`), the Jargon File 4.4.7 (`jargon-text`) and
the BSD fortunes collection (`fortunes`, `fortunes-min`), de-duplicated by
`scripts/build_corpus.sh`, with every 50th paragraph held out for validation.
It is small and it knows little; it is here so that `fine_tunes.create -m {name}`
works offline on a fresh machine. For real work, import real weights
(`tunery models import DIR --name {name}`).

| | |
|---|---|
| architecture | GPT-2: {L} layers, {NH} heads, width {C}, context {T}, vocabulary 50257 (r50k), tied LM head |
| parameters | {t['parameters']:,} |
| tokens seen | {int(t['tokens_seen']):,} ({steps} steps × {batch} sequences × {T} tokens) |
| peak learning rate | {lr} (AdamW β=(0.9, 0.95), weight decay 0.1, cosine to lr/10, clip 1.0); fine-tunes scale it by the learning-rate multiplier |
| validation loss | {t['valid_loss']:.4f} nats/token (perplexity {t['valid_perplexity']:.1f}) on the held-out slice ({u['valid_tokens']:,} tokens) |
| unigram baseline | {u['valid_loss']:.4f} nats/token (perplexity {u['valid_perplexity']:.1f}) on the same slice (`scripts/unigram_baseline.sh`) |
| training time | {int(secs)//60} min {int(secs)%60} s on {cpu} (2 cores, shared) |
| weights | model.safetensors, float16 (trained in float32) |

Compatibility names such as `gpt-4o-mini` (chat) or `babbage-002` may select these weights
(`data/models/aliases.json`, docs/models.md): under any name this is the small model above, not OpenAI's.

Rebuild: `scripts/build_base_models.sh {name}`.
"""
open(os.path.join(dest, "MODEL_CARD.md"), "w").write(card)
PY
done <<<"$specs"
