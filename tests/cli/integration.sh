#!/bin/bash
# cli integration: `tunery api …` against a real `tunery serve` on a free
# loopback port with a throw-away data directory, the way a user runs the
# fine-tuning guide. Outputs are compared with committed golden transcripts in
# tests/cli/golden/ after normalising what changes between runs (ids, times,
# ports). UPDATE_GOLDEN=1 rewrites them (review the diff before committing).
# Ends with "cli-integration: N passed, N failed".
cd "$(dirname "$0")" || exit 1
here=$(pwd)
bin=${TUNERY_BIN:-$here/../../tunery}
export TUNERY_SHARE=${TUNERY_SHARE:-$(cd "$here/../../data" && pwd)}
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "$2" ] && printf '%s\n' "$2" | head -n 40 | sed 's/^/     /'; return 0; }
finish() { echo "cli-integration: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

if ! "$bin" serve --help >/dev/null 2>&1; then
  echo "SKIP: \`tunery serve\` is not built into $bin yet; nothing to run the client against"
  finish
fi

tmp=$(mktemp -d /tmp/tunery-cli-it-XXXXXX)
srv=""
cleanup() {
  if [ -n "$srv" ]; then
    kids=$(pgrep -P "$srv" 2>/dev/null)   # the server's workers, by id
    kill "$srv" $kids 2>/dev/null
  fi
  wait 2>/dev/null; rm -rf "$tmp"
}
# wait_pid PID SECONDS: wait for a background process, kill -9 it after SECONDS
wait_pid() {
  local i
  for i in $(seq 1 $(($2 * 10))); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; return 137; fi
  wait "$1"
}
trap cleanup EXIT
# a private copy: others rebuild ./tunery while suites run
cp "$bin" "$tmp/tunery" && bin=$tmp/tunery

# Ids, times and addresses differ per run; everything else must not.
norm() {
  sed -E -e 's/\b(file|ft|ftjob|ftevent|cmpl|modelperm|org)-[A-Za-z0-9]{10,}/\1-ID/g' \
         -e 's/"(created_at|updated_at|created|finished_at)": [0-9]+/"\1": T/g' \
         -e 's/^\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\]/[TIME]/' \
         -e 's/-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}\b/-TS/g' \
         -e 's#http://127\.0\.0\.1:[0-9]+#http://HOST#g' \
         -e "s#$tmp#TMP#g"
}

# golden NAME ACTUAL: compare normalised output with golden/NAME.txt
golden() {
  local name=$1 actual=$2 want="$here/golden/$1.txt"
  if [ -n "$UPDATE_GOLDEN" ]; then mkdir -p "$here/golden"; printf '%s\n' "$actual" > "$want"; ok "$name (golden rewritten)"; return; fi
  if [ ! -f "$want" ]; then bad "$name: no golden/$name.txt (run with UPDATE_GOLDEN=1)"; return; fi
  local d
  if d=$(diff <(printf '%s\n' "$actual") "$want"); then ok "$name"; else bad "$name" "$d"; fi
  return 0
}

# ---- before a server exists: the connection error says what to do ----
out=$(OPENAI_API_KEY=sk-x "$bin" api -b http://127.0.0.1:9/v1 models.list 2>&1); rc=$?
[ $rc -eq 1 ] && [ "$out" = 'Error: cannot connect to http://127.0.0.1:9/v1: connection refused; is `tunery serve` running? Start it with `tunery serve --listen HOST:PORT`, or point -b/OPENAI_API_BASE at a running server' ] \
  && ok "server down: one line, exit 1" || bad "server down (rc=$rc)" "$out"
out=$(env -u OPENAI_API_KEY -u OPENAI_API_KEY_PATH TUNERY_DATA="$tmp/none" "$bin" api models.list 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q '^Error: No API key provided' <<<"$out" && ok "no key: refused before sending" || bad "no key (rc=$rc)" "$out"

# ---- a tiny base model named ada, so the suite needs no shipped weights and trains in seconds ----
mkdir -p "$tmp/data/models"
for i in $(seq 1 8); do
  printf '{"prompt": "Question %d ->", "completion": " Answer %d\\n"}\n' "$i" "$i"
done > "$tmp/train.jsonl"
if ! "$bin" train --model random:2,2,64,128 --train "$tmp/train.jsonl" --out "$tmp/data/models/ada" \
     --work "$tmp/ada.work" --n-epochs 1 --seed 1 -q >"$tmp/base.log" 2>&1; then
  bad "could not build the tiny base model with tunery train" "$(cat "$tmp/base.log")"
fi

# ---- start the server ----
"$bin" serve --listen 127.0.0.1:0 --data "$tmp/data" >"$tmp/serve.log" 2>&1 &
srv=$!
for _ in $(seq 1 100); do grep -q 'serving http' "$tmp/serve.log" 2>/dev/null && break; sleep 0.1; done
base=$(grep -o 'http://[^ ]*/v1' "$tmp/serve.log" | head -n 1)
if [ -z "$base" ] || [ ! -s "$tmp/data/initial-api-key" ]; then
  bad "tunery serve did not start" "$(cat "$tmp/serve.log")"; finish
fi
export OPENAI_API_BASE=$base
unset OPENAI_API_KEY OPENAI_API_KEY_PATH OPENAI_ORGANIZATION
export OPENAI_API_KEY_PATH=$tmp/key
cp "$tmp/data/initial-api-key" "$tmp/key"
api() { timeout 150 "$bin" api "$@"; }   # no single call may hang the suite

# ---- a small dataset, checked by prepare_data first, as the guide does ----
cd "$tmp" || exit 1
out=$("$bin" tools fine_tunes.prepare_data -f train.jsonl -q 2>&1); rc=$?
golden prepare_data_train "$(norm <<<"$out")"

# ---- files ----
out=$(api files.create -f train.jsonl -p fine-tune 2>&1)
golden files_create "$(norm <<<"$out")"
fid=$(grep -o '"id": "file-[^"]*"' <<<"$out" | head -n 1 | cut -d'"' -f4)
out=$(api files.get -i "$fid" 2>&1) && grep -q "\"id\": \"$fid\"" <<<"$out" && ok "files.get" || bad "files.get" "$out"
out=$(api files.list 2>&1) && grep -q "\"id\": \"$fid\"" <<<"$out" && ok "files.list" || bad "files.list" "$out"
out=$(api files.get -i file-doesnotexist 2>&1); rc=$?
[ $rc -eq 1 ] && golden files_get_unknown "$(norm <<<"$out")" || bad "files.get unknown: exit $rc" "$out"

# ---- fine_tunes.create, following the stream to the end ----
# The same file is already uploaded: the duplicate check offers it; an empty answer uploads anyway.
out=$(echo "" | api fine_tunes.create -t train.jsonl -m ada --n_epochs 2 2>&1); rc=$?
golden fine_tunes_create_follow "$(norm <<<"$out")"
ftid=$(grep -o 'Created fine-tune: ft-[A-Za-z0-9]*' <<<"$out" | head -n 1 | cut -d' ' -f3)
model=$(grep -o 'completions.create -m [^ ]*' <<<"$out" | cut -d' ' -f3)

# reuse by id at the duplicate prompt, and --no_follow prints the job
out=$(echo "$fid" | api fine_tunes.create -t train.jsonl -m ada --n_epochs 1 --no_follow 2>&1)
grep -q "Using your file train.jsonl: $fid" <<<"$out" && grep -q '"object": "fine-tune"' <<<"$out" \
  && ok "duplicate check: reuse an uploaded file, --no_follow prints the job" || bad "duplicate reuse / --no_follow" "$out"
ft2=$(grep -o '"id": "ft-[^"]*"' <<<"$out" | head -n 1 | cut -d'"' -f4)

# ---- resume: kill the follower mid-stream, follow again: full history + success block ----
"$bin" api fine_tunes.follow -i "$ft2" >"$tmp/killed.out" 2>&1 &
fpid=$!
sleep 0.3; kill -9 "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null
out=$(api fine_tunes.follow -i "$ft2" 2>&1)
grep -q "^\[.*\] Created fine-tune: $ft2$" <<<"$out" && grep -q 'Job complete! Status: succeeded' <<<"$out" \
  && ok "follow after a killed follower replays the history and ends with the success block" || bad "resume with follow" "$out"
out2=$(api fine_tunes.follow -i "$ft2" 2>&1)
[ "$(norm <<<"$out")" = "$(norm <<<"$out2")" ] && ok "follow twice prints the same transcript" || bad "follow twice differs" "$(diff <(echo "$out") <(echo "$out2"))"

# ---- Ctrl-C while the job is still going ----
for i in $(seq 1 64); do printf '{"prompt": "Longer question number %d ->", "completion": " A fairly long answer number %d\\n"}\n' "$i" "$i"; done > big.jsonl
out=$(api fine_tunes.create -t big.jsonl -m ada --n_epochs 10 --no_check_if_files_exist --no_follow 2>&1)
ft3=$(grep -o '"id": "ft-[^"]*"' <<<"$out" | head -n 1 | cut -d'"' -f4)
"$bin" api fine_tunes.follow -i "$ft3" >"$tmp/int.out" 2>&1 &
fpid=$!
sleep 1.5; kill -INT "$fpid"; wait_pid "$fpid" 10; rc=$?
out=$(cat "$tmp/int.out")
if [ $rc -eq 0 ] && grep -qE '^Stream interrupted\. Job is still (pending|running)\.$' <<<"$out" \
   && grep -q "^  tunery api fine_tunes.follow -i $ft3$" <<<"$out" && grep -q "^  tunery api fine_tunes.cancel -i $ft3$" <<<"$out"; then
  ok "Ctrl-C: job still running, resume and cancel commands, exit 0"
else bad "Ctrl-C block (rc=$rc)" "$out"; fi
out=$(api fine_tunes.cancel -i "$ft3" 2>&1) && grep -q '"status": "cancelled"' <<<"$out" && ok "fine_tunes.cancel" || bad "fine_tunes.cancel" "$out"
out=$(api fine_tunes.cancel -i "$ft3" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -qE '^(\[organization=[^]]*\] )?Error: .* \(HTTP status code: 400\)$' <<<"$out" && ok "cancel a finished job: error line, exit 1" || bad "cancel twice (rc=$rc)" "$out"

# ---- the other fine_tunes commands ----
out=$(api fine_tunes.list 2>&1) && grep -q "\"id\": \"$ftid\"" <<<"$out" && grep -q '"object": "list"' <<<"$out" && ok "fine_tunes.list" || bad "fine_tunes.list" "$out"
out=$(api fine_tunes.get -i "$ftid" 2>&1) && grep -q '"status": "succeeded"' <<<"$out" && grep -q '"events": \[' <<<"$out" && ok "fine_tunes.get" || bad "fine_tunes.get" "$out"
out=$(api fine_tunes.events -i "$ftid" 2>&1) && golden fine_tunes_events "$(norm <<<"$out")" || bad "fine_tunes.events" "$out"
out=$(api fine_tunes.events -i "$ftid" -s 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "tunery api fine_tunes.follow -i $ftid" <<<"$out" && ok "fine_tunes.events -s points at follow" || bad "events -s" "$out"
out=$(api fine_tunes.results -i "$ftid" 2>&1) && head -n 1 <<<"$out" | grep -q '^step,elapsed_tokens,elapsed_examples,training_loss' && ok "fine_tunes.results prints compiled_results.csv" || bad "fine_tunes.results" "$out"
out=$(api fine_tunes.results -i "$ft3" 2>&1); rc=$?
[ $rc -eq 1 ] && [ "$out" = "Error: No results file available for fine-tune $ft3" ] && ok "results of a job without results" || bad "results without file (rc=$rc)" "$out"

# ---- models and completions ----
out=$(api models.list 2>&1) && grep -q '"id": "curie"' <<<"$out" && grep -q "\"id\": \"$model\"" <<<"$out" && ok "models.list has the base models and the new one" || bad "models.list" "$out"
out=$(api models.get -i "$model" 2>&1) && grep -q "\"id\": \"$model\"" <<<"$out" && golden models_get_fine_tuned "$(norm <<<"$out")" || bad "models.get" "$out"
out=$(api completions.create -m "$model" -p "Question 3 ->" -M 4 -t 0 2>&1); rc=$?
[ $rc -eq 0 ] && [[ "$out" == "Question 3 ->"* ]] && ok "completions.create echoes the prompt, then the completion" || bad "completions.create (rc=$rc)" "$out"
out=$(api completions.create -m "$model" -p "Question 3 ->" -M 4 -t 0 --stream 2>&1); rc=$?
[ $rc -eq 0 ] && [ -n "$out" ] && ok "completions.create --stream" || bad "completions.create --stream (rc=$rc)" "$out"
out=$(api completions.create -m "$model" -p "Q ->" -M 2 -n 2 2>&1)
[ "$(grep -c '^===== Completion [01] =====$' <<<"$out")" = 2 ] && ok "completions.create -n 2 headers" || bad "completions -n 2" "$out"
out=$(api completions.create -m no-such-model -p x 2>&1); rc=$?
[ $rc -eq 1 ] && grep -qE 'Error: .*\(HTTP status code: 404\)$' <<<"$out" && ok "completions.create unknown model: 404 line" || bad "unknown model (rc=$rc)" "$out"
out=$(api models.delete -i "$model" 2>&1) && golden models_delete "$(norm <<<"$out")" || bad "models.delete" "$out"
out=$(api files.delete -i "$fid" 2>&1) && grep -q '"deleted": true' <<<"$out" && ok "files.delete" || bad "files.delete" "$out"

# ---- the current jobs API (/v1/fine_tuning/jobs) ----
# Losses differ in the last digits between CPUs and the model's tag is
# random: both are normalised for the golden transcripts of this part.
normj() { norm | sed -E -e 's/\bft:([A-Za-z0-9.-]+):([a-z0-9-]+):([^:" ]*):[A-Za-z0-9]{8}\b/ft:\1:\2:\3:TAG/g' \
                        -e 's/loss=[0-9.]+/loss=X/g' -e 's/ftckpt_[A-Za-z0-9]{24}/ftckpt_ID/g'; }
jstatus() { api fine_tuning.jobs.get -i "$1" 2>&1 | grep -o '"status": "[a-z_]*"' | cut -d'"' -f4; }
out=$(api fine_tuning.jobs.create -t train.jsonl -m ada --n_epochs 2 --seed 7 --suffix cli --no_check_if_files_exist 2>&1); rc=$?
jid=$(grep -o '"id": "ftjob-[^"]*"' <<<"$out" | head -n 1 | cut -d'"' -f4)
[ $rc -eq 0 ] && [ -n "$jid" ] && grep -q '"object": "fine_tuning.job"' <<<"$out" && grep -q '"seed": 7' <<<"$out" \
  && grep -q '"user_provided_suffix": "cli"' <<<"$out" && grep -qE '"status": "(queued|running)"' <<<"$out" \
  && ok "fine_tuning.jobs.create prints the job" || bad "fine_tuning.jobs.create (rc=$rc)" "$out"
if [ -n "$jid" ]; then
  out=$(timeout 120 "$bin" api fine_tuning.jobs.follow -i "$jid" 2>&1); rc=$?
  [ $rc -eq 0 ] && golden fine_tuning_jobs_follow "$(normj <<<"$out")" || bad "fine_tuning.jobs.follow (rc=$rc)" "$out"
  out2=$(timeout 60 "$bin" api fine_tuning.jobs.follow -i "$jid" 2>&1)
  [ "$(normj <<<"$out")" = "$(normj <<<"$out2")" ] && ok "fine_tuning.jobs.follow twice prints the same transcript" \
    || bad "fine_tuning.jobs.follow twice differs" "$(diff <(echo "$out") <(echo "$out2"))"
  out=$(api fine_tuning.jobs.get -i "$jid" 2>&1) && golden fine_tuning_jobs_get "$(normj <<<"$out")" || bad "fine_tuning.jobs.get" "$out"
  out=$(api fine_tuning.jobs.events -i "$jid" -l 3 2>&1) && golden fine_tuning_jobs_events "$(normj <<<"$out")" || bad "fine_tuning.jobs.events" "$out"
  last=$(grep -o '"id": "ftevent-[^"]*"' <<<"$out" | tail -n 1 | cut -d'"' -f4)
  out=$(api fine_tuning.jobs.events -i "$jid" -a "$last" -l 1 2>&1) && grep -q '"message": "Completed epoch 2/2"' <<<"$out" \
    && grep -q '"has_more": true' <<<"$out" && ok "fine_tuning.jobs.events --after pages back in time" || bad "fine_tuning.jobs.events -a" "$out"
  out=$(api fine_tuning.jobs.checkpoints -i "$jid" -l 1 2>&1) && grep -q '"object": "fine_tuning.job.checkpoint"' <<<"$out" \
    && grep -q '"step_number": 16' <<<"$out" && grep -q '"has_more": true' <<<"$out" \
    && ok "fine_tuning.jobs.checkpoints: the newest checkpoint, has_more" || bad "fine_tuning.jobs.checkpoints" "$out"
  ck=$(grep -o '"fine_tuned_model_checkpoint": "[^"]*"' <<<"$out" | cut -d'"' -f4)
  out=$(api completions.create -m "$ck" -p "Question 3 ->" -M 2 -t 0 2>&1); rc=$?
  [ $rc -eq 0 ] && [[ "$out" == "Question 3 ->"* ]] && ok "completions.create with a checkpoint model" || bad "completions with a checkpoint (rc=$rc)" "$out"
fi
# a second job, paused while it trains, resumed, then cancelled
out=$(api fine_tuning.jobs.create -t big.jsonl -m ada --n_epochs 10 --no_check_if_files_exist 2>&1)
j2=$(grep -o '"id": "ftjob-[^"]*"' <<<"$out" | head -n 1 | cut -d'"' -f4)
out=$(api fine_tuning.jobs.list -l 1 2>&1) && grep -q "\"id\": \"$j2\"" <<<"$out" && ! grep -q "\"id\": \"$jid\"" <<<"$out" \
  && grep -q '"has_more": true' <<<"$out" && ok "fine_tuning.jobs.list -l 1: the newest job, has_more" || bad "fine_tuning.jobs.list -l 1" "$out"
out=$(api fine_tuning.jobs.list -l 1 -a "$j2" 2>&1) && grep -q "\"id\": \"$jid\"" <<<"$out" && ok "fine_tuning.jobs.list -a: the next page" || bad "fine_tuning.jobs.list -a" "$out"
# pause once it has trained a step or two (estimated_finish is known then)
for _ in $(seq 1 300); do api fine_tuning.jobs.get -i "$j2" 2>&1 | grep -q '"estimated_finish": [0-9]' && break; sleep 0.1; done
out=$(api fine_tuning.jobs.pause -i "$j2" 2>&1) && grep -q '"status": "paused"' <<<"$out" && ok "fine_tuning.jobs.pause" || bad "fine_tuning.jobs.pause" "$out"
out=$(api fine_tuning.jobs.pause -i "$j2" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -qE '^(\[organization=[^]]*\] )?Error: Cannot pause fine-tuning job ftjob-[A-Za-z0-9]+: it is paused; only a queued or running job can be paused\. \(HTTP status code: 400\)$' <<<"$out" && ok "pause a paused job: error line, exit 1" || bad "pause twice (rc=$rc)" "$out"
sleep 1
[ "$(jstatus "$j2")" = paused ] && ok "a paused job stays paused" || bad "paused job status" "$(jstatus "$j2")"
out=$(api fine_tuning.jobs.resume -i "$j2" 2>&1) && grep -qE '"status": "(queued|running)"' <<<"$out" && ok "fine_tuning.jobs.resume" || bad "fine_tuning.jobs.resume" "$out"
# (among the newest 100 events: a faster engine logs more than 2 steps after
# "Resumed" within one poll, and the job then finished before the cancel)
for _ in $(seq 1 300); do api fine_tuning.jobs.events -i "$j2" -l 100 2>&1 | grep -q '"message": "Resumed from step' && break; sleep 0.1; done
out=$(api fine_tuning.jobs.cancel -i "$j2" 2>&1) && grep -q '"status": "cancelled"' <<<"$out" && ok "fine_tuning.jobs.cancel" || bad "fine_tuning.jobs.cancel" "$out"
out=$(api fine_tuning.jobs.cancel -i "$j2" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -qE '^(\[organization=[^]]*\] )?Error: Cannot cancel fine-tuning job ftjob-[A-Za-z0-9]+: it is cancelled; only a job that has not finished can be cancelled\. \(HTTP status code: 400\)$' <<<"$out" && ok "cancel a cancelled job: error line, exit 1" || bad "cancel twice (rc=$rc)" "$out"
out=$(timeout 30 "$bin" api fine_tuning.jobs.follow -i "$j2" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q '\] Fine-tuning job paused$' <<<"$out" && grep -q '\] Fine-tuning job resumed$' <<<"$out" \
  && grep -qE '\] Resumed from step [1-9][0-9]*$' <<<"$out" \
  && [ "$(tail -n 1 <<<"$out" | sed 's/^\[[^]]*\] //')" = "Fine-tuning job cancelled" ] \
  && ok "fine_tuning.jobs.follow of a cancelled job: its history, ending with the cancel" || bad "follow a cancelled job (rc=$rc)" "$out"
out=$(api fine_tuning.jobs.get -i ftjob-doesnotexist 2>&1); rc=$?
[ $rc -eq 1 ] && grep -qE '^(\[organization=[^]]*\] )?Error: No such fine-tuning job: ftjob-doesnotexist \(HTTP status code: 404\)$' <<<"$out" && ok "fine_tuning.jobs.get unknown: 404 line" || bad "get unknown (rc=$rc)" "$out"

# ---- chat_completions.create: a chat fine-tune of gpt-4o-mini (the curie weights) answers "OK." ----
for i in $(seq 1 8); do
  printf '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Item %d?"}, {"role": "assistant", "content": "OK."}]}\n' "$i"
done > chat.jsonl
out=$(timeout 150 "$bin" api fine_tuning.jobs.create -t chat.jsonl -m gpt-4o-mini --n_epochs 6 --batch_size 1 \
      --learning_rate_multiplier 30 --seed 7 --suffix brief --no_check_if_files_exist --follow 2>&1); rc=$?
chat=$(grep -o 'create -m ft:gpt-4o-mini:[^ ]*' <<<"$out" | cut -d' ' -f3)
[ $rc -eq 0 ] && [ -n "$chat" ] && ok "a chat fine-tune of gpt-4o-mini for chat_completions.create" || bad "chat fine-tune (rc=$rc)" "$out"
[ "$(tail -n 1 <<<"$out")" = "tunery api chat_completions.create -m $chat -g user <YOUR_MESSAGE>" ] \
  && ok "fine_tuning.jobs.follow of a chat job suggests chat_completions.create" || bad "chat job hint" "$(tail -n 3 <<<"$out")"
# ct ARGS...: one call as a transcript entry: the command, stdout+stderr, and the exit status when not 0
ct() {
  local o r
  o=$(api chat_completions.create "$@" 2>&1); r=$?
  printf '$ tunery api chat_completions.create'; printf ' %q' "$@"; printf '\n%s\n' "$o"
  [ $r -ne 0 ] && printf '[exit %d]\n' "$r"
  return 0
}
if [ -n "$chat" ]; then
  t=$( ct -m "$chat" -g system "Be brief." -g user "Item 3?" -t 0
       ct -m "$chat" -g system "Be brief." -g user "Item 3?" -t 0 --stream
       ct -m "$chat" -g system "Be brief." -g user "Item 5?" -n 2 -M 6 -t 0
       ct -m "$chat" -g system "Be brief." -g user
       ct -m "$chat" -g user -M 4
       ct -m "$chat" -g wizard "Item 3?"
       ct -m ada -g user "Item 3?"
       ct -m "$chat" -g user "Item 3?" -n 2 --stream
       ct -g user "Item 3?"
       ct -m "$chat" -e "$chat" -g user "Item 3?"
       ct -m "$chat" -M 4 )
  golden chat_completions_create "$(normj <<<"$t")"
  a=$(api chat_completions.create -m "$chat" -g system "Be brief." -g user "Item 3?" -t 0 2>&1)
  [ "$a" = "OK." ] && ok "chat_completions.create prints the reply alone, no newline after it" || bad "chat reply" "$(od -c <<<"$a" | head -n 5)"
fi
# the same text streamed and not, on a conversation the base model answers at length
p=(-m gpt-4o-mini -g system "Be brief." -g user "And God said" -M 16 -t 0)
a=$(api chat_completions.create "${p[@]}" 2>&1); ra=$?
s=$(api chat_completions.create "${p[@]}" --stream 2>&1); rs=$?
[ $ra -eq 0 ] && [ $rs -eq 0 ] && [ "${#a}" -ge 8 ] && [ "$a" = "$s" ] \
  && ok "chat_completions.create: --stream prints the same text at temperature 0 (${#a} chars)" || bad "stream vs not (rc=$ra/$rs)" "plain:  [$a]"$'\n'"stream: [$s]"
out=$(api -v chat_completions.create -m gpt-4o-mini -g user hi -M 2 -t 0 2>&1 >/dev/null)
grep -q "^message='Request to OpenAI API' method=post path=$OPENAI_API_BASE/chat/completions$" <<<"$out" \
  && grep -q "^message='OpenAI API response' path=$OPENAI_API_BASE/chat/completions .*response_code=200$" <<<"$out" \
  && ok "chat_completions.create -v logs the request and the answer" || bad "chat -v" "$out"
# -g takes its two values as argparse does: a negative number is a value, a flag-like word is not
out=$(api chat_completions.create -m gpt-4o-mini -g user -5 --max_tokens 2 -t 0 2>&1); rc=$?
[ $rc -eq 0 ] && ok "chat_completions.create -g user -5: a negative number is content" || bad "-g user -5 (rc=$rc)" "$out"
out=$(api chat_completions.create -m gpt-4o-mini -g user -x 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q 'argument -g/--message: expected 2 arguments' <<<"$out" && ok "chat_completions.create -g user -x: usage error" || bad "-g user -x (rc=$rc)" "$out"
out=$(api chat_completions.create -m gpt-4o-mini --message=user hi 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q 'argument -g/--message: expected 2 arguments' <<<"$out" && ok "chat_completions.create --message=ROLE: usage error" || bad "--message= (rc=$rc)" "$out"
out=$(api chat_completions.create --help 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q '^  -g, --message ROLE CONTENT ' <<<"$out" && grep -q '^  --stream ' <<<"$out" \
  && "$bin" api --help | grep -q '^  chat_completions.create -m MODEL -g ROLE CONTENT' \
  && ok "chat_completions.create --help, and tunery api --help lists it" || bad "chat --help (rc=$rc)" "$out"

# ---- last: the server dies mid-stream; the follower says how to resume ----
out=$(api fine_tunes.create -t big.jsonl -m ada --n_epochs 10 --no_check_if_files_exist --no_follow 2>&1)
ft4=$(grep -o '"id": "ft-[^"]*"' <<<"$out" | head -n 1 | cut -d'"' -f4)
"$bin" api fine_tunes.follow -i "$ft4" >"$tmp/drop.out" 2>"$tmp/drop.err" &
fpid=$!
sleep 1.5
kids=$(pgrep -P "$srv" 2>/dev/null)
kill -9 $kids "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; srv=""
wait_pid "$fpid" 15; rc=$?
out=$(cat "$tmp/drop.out")
if [ $rc -eq 0 ] && grep -q '^Stream interrupted (client disconnected)\.$' <<<"$out" \
   && grep -q "^  tunery api fine_tunes.follow -i $ft4$" <<<"$out"; then
  ok "server killed mid-stream: the resume command, exit 0"
else bad "server killed mid-stream (rc=$rc)" "$out$(cat "$tmp/drop.err")"; fi
finish
