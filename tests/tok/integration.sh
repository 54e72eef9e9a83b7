#!/bin/bash
# Tokenizer parity suite: token ids of `tunery tokenize` against OpenAI's
# tiktoken (npm, WASM build, r50k_base) on the KJV Bible, the fortunes files,
# /usr/share/common-licenses and generated hard strings, plus lossless round
# trips, plus Hugging Face tokenizers.js on the files `tunery tokenize
# --save-dir` writes and on a Llama-3-style fixture. Run by `make integration`
# from the repo root with TUNERY_BIN set.
# Closing line: "tok-parity: N passed, N failed".
set -u
root=$(pwd)
bin="${TUNERY_BIN:-$root/tunery}"
export TUNERY_SHARE="${TUNERY_SHARE:-$root/data}"
cd "$root/tests/tok/node" || exit 1
if [ ! -d node_modules/tiktoken ] || [ ! -d node_modules/@huggingface/tokenizers ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --silent >/dev/null 2>&1 || {
    echo "tok-parity: cannot install the pinned npm tiktoken (npm ci in tests/tok/node failed)"
    echo "tok-parity: 0 passed, 1 failed"; exit 1; }
fi
exec node parity.mjs "$bin"
