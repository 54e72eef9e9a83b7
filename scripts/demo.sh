#!/bin/bash
# The whole workflow of the README's quick start, end to end, on this machine:
# start `tunery serve` on a free loopback port with a fresh data directory,
# upload the example dataset and fine-tune the built-in base model with the
# OpenAI-style CLI (following the event stream), then ask the fine-tuned model
# for completions. Everything is local; nothing leaves the machine.
#   scripts/demo.sh [DATASET.jsonl] [BASE-MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/tunery"
dataset="${1:-$root/data/examples/fortunes_train.jsonl}"
base="${2:-ada}"
[ -x "$bin" ] || { echo "demo: $bin is missing; run 'make' first" >&2; exit 1; }
[ -f "$dataset" ] || { echo "demo: dataset $dataset not found; run scripts/make_fortunes_dataset.py or pass a JSONL file" >&2; exit 1; }

data=$(mktemp -d /tmp/tunery-demo.XXXXXX)
log="$data/serve.log"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; echo "demo: server stopped; data directory kept at $data"; }
trap cleanup EXIT

echo "== 1. tunery serve (data directory $data)"
"$bin" serve --listen 127.0.0.1:0 --data "$data" >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$log" | head -n 1 || true)
  [ -n "$url" ] && [ -s "$data/initial-api-key" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "demo: the server exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$log"; echo "demo: the server did not report its address" >&2; exit 1; }
export OPENAI_API_BASE="$url/v1" OPENAI_API_KEY="$(cat "$data/initial-api-key")"
echo "   listening on $url"

echo "== 2. prepare_data checks the dataset (on a copy: it writes its suggestions beside the file)"
cp "$dataset" "$data/$(basename "$dataset")"
dataset="$data/$(basename "$dataset")"
"$bin" tools fine_tunes.prepare_data -f "$dataset" -q </dev/null | tail -n 6

echo "== 3. fine_tunes.create -t $(basename "$dataset") -m $base --suffix demo (follows the events)"
out="$data/create.out"
"$bin" api fine_tunes.create -t "$dataset" -m "$base" --suffix demo --n_epochs 2 | tee "$out"
model=$(grep -oE 'Uploaded model: [^ ]+' "$out" | tail -n 1 | sed 's/Uploaded model: //')
[ -n "$model" ] || { echo "demo: the fine-tune did not produce a model (see above)" >&2; exit 1; }

echo "== 4. fine_tunes.list"
"$bin" api fine_tunes.list | sed -n 1,20p

job=$(grep -oE 'Created fine-tune: ft-[A-Za-z0-9]+' "$out" | head -n 1 | sed 's/Created fine-tune: //')
echo "== 5. fine_tunes.results -i $job (first lines)"
"$bin" api fine_tunes.results -i "$job" | sed -n 1,4p

echo "== 6. completions with the fine-tuned model $model, on a held-out example"
prompt=$(head -n 1 "$root/data/examples/fortunes_valid.jsonl" | sed -E 's/^\{"prompt": ?"(([^"\\]|\\.)*)".*/\1/')
printf 'prompt: %b\n' "$prompt"
"$bin" api completions.create -m "$model" -p "$(printf '%b' "$prompt")" -M 2 -t 0
echo
echo "== done"
echo "   fine-tuned model: $model, in $(ls -d "$data"/models/*/ | head -n 1)"
echo "   results file: compiled_results.csv (tunery api fine_tunes.results -i $job), in $data/jobs/$job/"
