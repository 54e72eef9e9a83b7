#!/bin/bash
# tests/train/integration.sh: the fine-tuning pipeline through the real binary.
#  1. kill -9 mid-epoch after a checkpoint, --resume, and every value of
#     compiled_results.csv (losses included, 9 significant digits = the float
#     bits) equals an uninterrupted run with the same seed;
#  2. learning: a small randomly initialised GPT-2 fine-tuned on the Debian
#     fortunes classification set (data/examples, scripts/make_fortunes_dataset.py)
#     lowers validation loss at every epoch end and beats the majority-class
#     baseline on validation accuracy;
#  3. the command's errors: a bad line is named, usage errors exit 2.
# Prints "train-integration: N passed, N failed". Run from the repo root
# (make integration sets TUNERY_BIN and TUNERY_SHARE).
set -u
BIN=${TUNERY_BIN:-$(pwd)/tunery}
export TUNERY_SHARE=${TUNERY_SHARE:-$(pwd)/data}
# One thread by default: these models are tiny (64 channels), and on a shared
# two-core machine a second OpenMP thread mostly waits at barriers. The
# results do not depend on the thread count.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
TMP=$(mktemp -d /tmp/tunery-train-integ-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
passed=0; failed=0
ok()   { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

TRAIN=data/examples/fortunes_train.jsonl
VALID=data/examples/fortunes_valid.jsonl
if [ ! -f "$TRAIN" ]; then
  /usr/bin/python3 scripts/make_fortunes_dataset.py --out "$TMP/ex" >/dev/null
  TRAIN=$TMP/ex/fortunes_train.jsonl; VALID=$TMP/ex/fortunes_valid.jsonl
fi

# ---- 1. kill -9 and resume -------------------------------------------------
head -n 120 "$TRAIN" > "$TMP/small.jsonl"
COMMON=(--model random:2,2,32,64 --train "$TMP/small.jsonl" --n-epochs 2 --batch-size 4
        --learning-rate-multiplier 2 --seed 7 --checkpoint-every 5 --truncate left -q)
t0=$(date +%s)
"$BIN" train "${COMMON[@]}" --out "$TMP/clean" >/dev/null 2>"$TMP/clean.err" || { cat "$TMP/clean.err"; fail "clean run"; }
echo "     clean run: $(( $(date +%s) - t0 )) s"
"$BIN" train "${COMMON[@]}" --out "$TMP/killed" >/dev/null 2>&1 &
pid=$!
# wait for a mid-epoch checkpoint (30 steps per epoch: step 10 is mid-epoch)
for _ in $(seq 1 1200); do
  [ -d "$TMP/killed.work/ckpt-step-10" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
rows_at_kill=$(($(wc -l < "$TMP/killed.work/compiled_results.csv") - 1))
rows_clean=$(($(wc -l < "$TMP/clean.work/compiled_results.csv") - 1))
if [ -d "$TMP/killed.work/ckpt-step-10" ] && [ "$rows_at_kill" -lt "$rows_clean" ]; then
  ok "killed with -9 after checkpoint step 10, at step $rows_at_kill of $rows_clean"
else
  fail "the run was not killed mid-way after a checkpoint (rows $rows_at_kill of $rows_clean)"
fi
"$BIN" train "${COMMON[@]}" --out "$TMP/killed" --resume >/dev/null 2>"$TMP/resume.err" || { cat "$TMP/resume.err"; fail "resume run"; }
if cmp -s "$TMP/clean.work/compiled_results.csv" "$TMP/killed.work/compiled_results.csv"; then
  ok "resumed compiled_results.csv is identical to the clean run ($rows_clean rows, every loss bit-equal)"
else
  fail "resumed results differ from the clean run"; diff "$TMP/clean.work/compiled_results.csv" "$TMP/killed.work/compiled_results.csv" | head -5
fi
if cmp -s "$TMP/clean/model.safetensors" "$TMP/killed/model.safetensors"; then
  ok "resumed final weights are byte-identical"
else
  fail "resumed final weights differ"
fi

# ---- 2. learning on fortunes ------------------------------------------------
t0=$(date +%s)
"$BIN" train --model random:2,4,64,128 --train "$TRAIN" --validation "$VALID" --out "$TMP/fortunes" \
  --n-epochs 3 --batch-size 8 --learning-rate-multiplier 2 --seed 1 --truncate left --validate-every 1000000 \
  --compute-classification-metrics --classification-n-classes 3 -q >/dev/null 2>"$TMP/learn.err" || { cat "$TMP/learn.err"; fail "fortunes fine-tune"; }
echo "     fortunes fine-tune: $(( $(date +%s) - t0 )) s"
CSV=$TMP/fortunes.work/compiled_results.csv
majority=$(/usr/bin/python3 -c '
import json, sys, collections
c = collections.Counter(json.loads(l)["completion"] for l in open(sys.argv[1]) if l.strip())
print("%.6f" % (max(c.values()) / sum(c.values())))' "$VALID")
read -r vl acc <<<"$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  $col["validation_loss"] != "" { v = v (v ? ";" : "") $col["validation_loss"]; a = $col["classification/accuracy"] }
  END { print v, a }' "$CSV")"
echo "     validation loss at epoch ends: $vl; accuracy $acc (majority baseline $majority)"
if [ -n "$vl" ] && awk -v s="$vl" 'BEGIN { n = split(s, x, ";"); if (n < 3) exit 1; for (i = 2; i <= n; i++) if (x[i] >= x[i-1]) exit 1 }'; then
  ok "validation loss decreases at every epoch end"
else
  fail "validation loss does not decrease monotonically: $vl"
fi
if [ -n "$acc" ] && awk -v a="$acc" -v m="$majority" 'BEGIN { exit !(a > m) }'; then
  ok "validation accuracy $acc beats the majority-class baseline $majority"
else
  fail "validation accuracy $acc does not beat the majority baseline $majority"
fi
missing=""
for f in model.safetensors config.json tokenizer.json tunery.json; do [ -s "$TMP/fortunes/$f" ] || missing="$missing $f"; done
[ -z "$missing" ] && ok "output directory has model.safetensors, config.json, tokenizer.json, tunery.json" || fail "output lacks$missing"

# ---- 3. errors ---------------------------------------------------------------
printf '{"prompt": "a", "completion": " b"}\n{"prompt": "a", "completion": ""}\n' > "$TMP/bad.jsonl"
"$BIN" train --model random:1,1,8,16 --train "$TMP/bad.jsonl" --out "$TMP/bad" 2>"$TMP/bad.err"; rc=$?
if [ $rc -eq 1 ] && grep -q 'line 2: "completion" is empty' "$TMP/bad.err"; then ok "a bad line is named (exit 1)"; else fail "bad line: exit $rc, $(cat "$TMP/bad.err")"; fi
"$BIN" train --train x 2>/dev/null; rc=$?
[ $rc -eq 2 ] && ok "missing --model is a usage error (exit 2)" || fail "missing --model: exit $rc"
"$BIN" train --help | grep -q -- '--classification-positive-class' && ok "--help documents the flags" || fail "--help"

echo "train-integration: $passed passed, $failed failed"
[ $failed -eq 0 ]
