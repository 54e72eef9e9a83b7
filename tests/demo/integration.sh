#!/bin/bash
# `make demo` in CI's conditions: scripts/demo.sh (serve, prepare_data, fine_tunes.create
# following events, fine_tunes.list/results, completions) on the built-in base
# model ada, with a 60-example slice of the shipped dataset to keep it short.
# Checks the closing lines the workflow must reach.
set -u
cd "$(dirname "$0")/../.."
passed=0; failed=0
check() { if eval "$2"; then passed=$((passed + 1)); echo "ok - $1"; else failed=$((failed + 1)); echo "not ok - $1"; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -n 60 data/examples/fortunes_train.jsonl >"$tmp/fortunes60.jsonl"
out="$tmp/demo.out"
timeout 600 scripts/demo.sh "$tmp/fortunes60.jsonl" ada >"$out" 2>&1
rc=$?
sed -e 's/^/    /' "$out" | tail -n 25
check "demo exits 0" '[ "$rc" -eq 0 ]'
check "the fine-tune succeeded" 'grep -q "Fine-tune succeeded" "$out"'
check "the CLI printed the closing block" 'grep -q "Job complete! Status: succeeded" "$out"'
check "a model was uploaded with the legacy name" 'grep -qE "Uploaded model: ada:ft-personal:demo-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}" "$out"'
check "the results file has OpenAI's header" 'grep -q "^step,elapsed_tokens,elapsed_examples,training_loss" "$out"'
check "the completion came back" 'grep -q "^== done" "$out"'
check "the demo left nothing in data/examples" '[ -z "$(git status --porcelain data/examples)" ]'
echo "demo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
