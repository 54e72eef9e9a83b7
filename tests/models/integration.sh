#!/bin/bash
# models integration suite: `tunery models import | list | export` through the
# binary, and the exported GGUF parsed by Hugging Face's own GGUF parser (npm
# @huggingface/gguf, pinned in tests/models/node). Run by `make integration`
# from the repo root with TUNERY_BIN set.
# Closing line: "models-integration: N passed, N failed".
set -u
root=$(pwd)
bin="${TUNERY_BIN:-$root/tunery}"
export TUNERY_SHARE="${TUNERY_SHARE:-$root/data}"
fix="$root/tests/models/fixtures"
passed=0; failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { local name="$1"; shift; if "$@" >/dev/null; then ok; else fail "$name"; fi; }
finish() { echo "models-integration: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

# npm packages, pinned: @huggingface/gguf (tests/models/node) and
# node-llama-cpp with its prebuilt linux-x64 CPU build of llama.cpp
# (tests/models/llama; --omit=optional skips the other platforms' builds)
for d in node:@huggingface/gguf llama:node-llama-cpp; do
  cd "$root/tests/models/${d%%:*}" || exit 1
  if [ ! -d "node_modules/${d#*:}" ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --omit=optional --no-audit --no-fund --silent >/dev/null 2>&1 || {
      echo "models-integration: cannot install the pinned npm ${d#*:} (npm ci in tests/models/${d%%:*} failed)"
      fail "npm ci ${d#*:}"; finish; }
  fi
done
cd "$root"
tmp=$(mktemp -d /tmp/tunery-models-integ-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export TUNERY_DATA="$tmp/data"

# import: the name then means these weights for list, generate, export
out=$("$bin" models import "$fix/hf_gpt2" --name curie 2>&1)
check "import hf_gpt2 as curie ($out)" grep -q "imported .* as curie: 36128 parameters" <<<"$out"
check "curie installed in the data dir" test -f "$TUNERY_DATA/models/curie/model.safetensors"
check "tunery.json written" grep -q '"pretrain_learning_rate": 0.0006' "$TUNERY_DATA/models/curie/tunery.json"
list=$("$bin" models list)
check "list shows curie as imported" grep -Eq "^curie +imported +36\.1K +64 " <<<"$list"
check "list shows ada's resolution" grep -Eq "^ada +(built-in|missing) " <<<"$list"
json=$("$bin" models list --json)
check "list --json row" grep -q '"name":"curie","source":"imported","parameters":36128,"context":64' <<<"$json"
check "list --json is one object a line" test "$(grep -c '^{' <<<"$json")" -eq "$(wc -l <<<"$json")"
check "generate resolves curie to the import" "$bin" generate --model curie -p "the" -M 4 -t 0
# a fine-tune from an imported name: the base resolves to the import and the
# learning rate follows its tunery.json (multiplier 0.05 x --pretrain-lr 1e-3)
check "import with --pretrain-lr" "$bin" models import "$fix/hf_gpt2" --name ft-base --pretrain-lr 0.001
printf '%s\n' '{"prompt":"the cat ->","completion":" in\n"}' '{"prompt":"a dog ->","completion":" at\n"}' \
  '{"prompt":"the sun ->","completion":" in\n"}' '{"prompt":"we rest ->","completion":" at\n"}' >"$tmp/ft.jsonl"
check "tunery train --model ft-base" "$bin" train --model ft-base --train "$tmp/ft.jsonl" \
  --out "$TUNERY_DATA/models/my-ft" --work "$tmp/ft.work" --n-epochs 1 --seed 1 -q
check "list shows the fine-tune" grep -Eq "^my-ft +fine-tuned +36\.1K +64 " <<<"$("$bin" models list)"
check "fine-tune based on the import" grep -q "base $TUNERY_DATA/models/ft-base," "$tmp/ft.work/train.log"
check "fine-tune learning rate from tunery.json" grep -q "learning_rate 5e-05" "$tmp/ft.work/train.log"
"$bin" models import "$fix/hf_gpt2_f16" --name curie >/dev/null 2>"$tmp/err"; rc=$?
check "re-import without --force refused" test "$rc" -ne 0
check "refusal names --force" grep -q -- "--force" "$tmp/err"
check "error is one line" test "$(wc -l <"$tmp/err")" -eq 1
check "re-import with --force" "$bin" models import "$fix/hf_gpt2_f16" --name curie --force
check "forced import swapped the directory" test -f "$TUNERY_DATA/models/curie/tokenizer.json"
"$bin" models import "$fix/bad_shape" --name bad >/dev/null 2>"$tmp/err"; rc=$?
check "bad shape refused" test "$rc" -ne 0
check "bad shape names the tensor and both shapes" grep -q "h.1.attn.c_attn.weight has shape \[96, 32\], expected \[32, 96\]" "$tmp/err"
check "nothing installed for the bad directory" test ! -e "$TUNERY_DATA/models/bad"
check "import --help" "$bin" models import --help
check "export --help" "$bin" models export --help

# GGUF: parsed by @huggingface/gguf
want='"context":64,"embd":32,"layers":2,"heads":2,"vocab":269,"merges":12,"eos":268,"space_id":32'
run_node() { node "$root/tests/models/node/check_gguf.mjs" "$@" | tee "$tmp/node.out" | grep -v '^gguf-check'; \
  local l; l=$(tail -n 1 "$tmp/node.out"); \
  if ! grep -Eq '^gguf-check: [0-9]+ passed, [0-9]+ failed$' <<<"$l"; then fail "gguf check crashed"; return; fi; \
  passed=$((passed + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$l"))); \
  failed=$((failed + $(sed -E 's/.*, ([0-9]+) failed/\1/' <<<"$l"))); }
check "export gguf f32" "$bin" models export curie --format gguf --out "$tmp/curie.gguf"
run_node "$tmp/curie.gguf" "{\"name\":\"curie\",\"f16\":false,$want}"
check "export gguf f16" "$bin" models export curie --format gguf --type f16 --out "$tmp/curie16.gguf"
run_node "$tmp/curie16.gguf" "{\"name\":\"curie\",\"f16\":true,$want}"
check "export gguf --output-tensor" "$bin" models export curie --format gguf --output-tensor --out "$tmp/curie-out.gguf"
run_node "$tmp/curie-out.gguf" "{\"name\":\"curie\",\"f16\":false,\"output\":true,$want}"
s32=$(stat -c %s "$tmp/curie.gguf"); s16=$(stat -c %s "$tmp/curie16.gguf")
check "f16 file is smaller ($s16 < $s32)" test "$s16" -lt "$s32"

# llama.cpp itself loads the exports and gives PyTorch's probabilities
run_llama() { node "$root/tests/models/llama/llama_parity.mjs" "$@" | tee "$tmp/llama.out" | grep -v '^llama-check'; \
  local l; l=$(tail -n 1 "$tmp/llama.out"); \
  if ! grep -Eq '^llama-check: [0-9]+ passed, [0-9]+ failed$' <<<"$l"; then fail "llama.cpp check crashed"; return; fi; \
  passed=$((passed + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$l"))); \
  failed=$((failed + $(sed -E 's/.*, ([0-9]+) failed/\1/' <<<"$l"))); }
check "import hf_gpt2 as babbage" "$bin" models import "$fix/hf_gpt2" --name babbage
check "export babbage gguf" "$bin" models export babbage --format gguf --out "$tmp/babbage.gguf"
text="the then in at whether"
ids=$(printf '%s' "$text" | "$bin" tokenize --model babbage)
run_llama "$tmp/babbage.gguf" "$fix/expected.json" logits_f32 1e-4 "$text" "$ids"
run_llama "$tmp/curie.gguf" "$fix/expected.json" logits_f16 1e-4
run_llama "$tmp/curie16.gguf" "$fix/expected.json" logits_f16 1e-4
run_llama "$tmp/curie-out.gguf" "$fix/expected.json" logits_f16 1e-4

# a model with GPT-2's own vocabulary and no tokenizer files: r50k goes in.
# Made by tunery itself (a random 1-layer model, one tiny training step, then
# its tokenizer files removed), so the suite needs no PyTorch.
printf '{"prompt": "a", "completion": " b"}\n' >"$tmp/one.jsonl"
if "$bin" train --model random:1,1,8,16 --train "$tmp/one.jsonl" --out "$tmp/r50k" --n-epochs 1 --seed 1 >/dev/null 2>&1 &&
   rm -f "$tmp/r50k"/vocab.json "$tmp/r50k"/merges.txt "$tmp/r50k"/tokenizer.json "$tmp/r50k"/tokenizer_config.json; then
  check "export r50k model" "$bin" models export "$tmp/r50k" --format gguf --out "$tmp/r50k.gguf"
  text="Hello, world! The quick brown fox's   back.  1234 naïve café <|endoftext|> \$x_1"
  ids=$(printf '%s' "$text" | "$bin" tokenize)
  run_llama "$tmp/r50k.gguf" - - 0 "$text" "$ids"
  run_node "$tmp/r50k.gguf" '{"name":"r50k","f16":false,"context":16,"embd":8,"layers":1,"heads":1,"vocab":50257,"merges":50000,"eos":50256,"space_id":220}'
else
  fail "make a random r50k model with tunery train"
fi

# safetensors export: the Hugging Face directory
check "export safetensors" "$bin" models export curie --format safetensors --out "$tmp/hf"
check "exported weights identical" cmp -s "$tmp/hf/model.safetensors" "$fix/hf_gpt2_f16/model.safetensors"
check "exported tokenizer" test -f "$tmp/hf/tokenizer.json"
"$bin" models export nosuchmodel --format gguf --out "$tmp/x.gguf" 2>"$tmp/err"; rc=$?
check "unknown model refused" test "$rc" -ne 0
check "unknown model error says where it looked" grep -q "not found" "$tmp/err"
finish
