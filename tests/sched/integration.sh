#!/bin/bash
# tests/sched/integration.sh: the scheduler and the real `tunery worker`
# under kill -9. The scheduler runs in sched_driver (tests/sched/
# sched_driver.c), a small host for the same sched_start() that `tunery
# serve` runs, so these tests need no HTTP. Each case trains a tiny random
# GPT-2 on a 40-line file: a few seconds with one thread.
#   1. uninterrupted legacy job: succeeded, exact event list, results CSV
#   2. kill -9 of the scheduler's process mid-training: its worker dies too;
#      on restart the job resumes from its checkpoint, succeeds, its events
#      have no gap or duplicate, and its loss curve equals run 1's
#   3. kill -9 of the worker alone: the job is failed with the reason;
#      a SIGSEGV instead: the same, and worker.log has the stack
#   4. two jobs: queue numbers, and cancel from another process
#   5. current API: metrics events, checkpoints, pause and resume
#   6. clean shutdown (sched_stop) mid-training: re-queued, resumed later
#   7. tunery keys create/list/revoke
#   8. an unknown base model fails the job with a reason; continued
#      fine-tuning of a fine-tuned model keeps the root base in the name
#   9. two identical jobs at once (max_concurrent 2): two distinct models
set -u
cd "$(dirname "$0")/../.."
root=$(pwd)
TUNERY=${TUNERY_BIN:-$root/tunery}
export TUNERY_SHARE=${TUNERY_SHARE:-$root/data}
export OMP_NUM_THREADS=1          # a tiny model: threads only add noise on a shared machine
export TUNERY_CHECKPOINT_EVERY=15 # checkpoints inside epochs too, so a kill lands between two
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else fail "$1"; fi; }

make -s build/tests/sched/sched_driver >/dev/null || { echo "sched integration: 0 passed, 1 failed"; exit 1; }
DRV=$root/build/tests/sched/sched_driver
[ -x "$TUNERY" ] || { echo "no tunery binary at $TUNERY"; echo "sched integration: 0 passed, 1 failed"; exit 1; }

tmp=$(mktemp -d /tmp/tunery-sched-it.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
[ -n "${KEEP_TMP:-}" ] && trap - EXIT

/usr/bin/python3 - >"$tmp/train.jsonl" <<'PY'
import json, random
random.seed(7)
for i in range(40):
    a, b = random.randint(0, 9), random.randint(0, 9)
    print(json.dumps({"prompt": f"{a} plus {b} ->", "completion": f" {a + b}\n"}))
PY

newdata() { # newdata NAME -> a data dir with the tiny base model "tiny"
  local d=$tmp/$1; mkdir -p "$d/models"
  "$DRV" tiny-model "$d/models/tiny" || return 1
  echo "$d"
}
msgs() { "$DRV" events "$1" "$2" | cut -f3; }
worker_pids() { pgrep -f "tunery worker $1" 2>/dev/null || true; }

# ---- 1. uninterrupted
D1=$(newdata a)
J1=$(TUNERY_DATA=$D1 DRIVER_EPOCHS=3 "$DRV" create "$D1" "$tmp/train.jsonl" tiny legacy)
t0=$(date +%s.%N)
TUNERY_DATA=$D1 "$DRV" run "$D1" "$TUNERY" 90; rc=$?
t1=$(date +%s.%N)
echo "uninterrupted job: $(echo "$t1 - $t0" | bc) s"
read -r st1 model1 res1 _ < <("$DRV" status "$D1" "$J1")
check "uninterrupted job succeeds" '[ $rc -eq 0 ] && [ "$st1" = succeeded ]'
check "legacy model name" '[[ "$model1" =~ ^tiny:ft-personal-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}$ ]]'
check "model directory registered" '[ -f "$D1/models/$model1/config.json" ]'
check "results file stored" '[ -s "$D1/files/$res1" ] && head -1 "$D1/files/$res1" | grep -q "^step,elapsed_tokens"'
expected="Created fine-tune: $J1
Fine-tune costs \$0.00
Fine-tune enqueued. Queue number: 0
Fine-tune started
Completed epoch 1/3
Completed epoch 2/3
Completed epoch 3/3
Uploaded model: $model1
Uploaded result file: $res1
Fine-tune succeeded"
check "exact legacy event sequence" '[ "$(msgs "$D1" "$J1")" = "$expected" ]'

# ---- 2. kill -9 of the scheduler's process during training, then restart
D2=$(newdata b)
J2=$(TUNERY_DATA=$D2 DRIVER_EPOCHS=3 "$DRV" create "$D2" "$tmp/train.jsonl" tiny legacy)
TUNERY_DATA=$D2 "$DRV" run "$D2" "$TUNERY" 90 & host=$!; pids+=($host)
for _ in $(seq 1 600); do   # wait for a complete checkpoint after epoch 1 (up to 60 s; not ckpt-step-N.tmp)
  msgs "$D2" "$J2" | grep -q "Completed epoch 1/3" && ls -d "$D2/jobs/$J2"/ckpt-step-*[0-9] >/dev/null 2>&1 && break
  sleep 0.05
done
# killed at once: an epoch of this job takes ~0.2 s, and after a 0.3 s sleep
# the job had been seen two epochs in, one short of finishing before the kill
kill -9 $host; wait $host 2>/dev/null
sleep 0.5
check "worker dies with the scheduler's process" '[ -z "$(worker_pids "$J2")" ]'
read -r st2a _ < <("$DRV" status "$D2" "$J2")
check "job left running by the dead process" '[ "$st2a" = running ]'
TUNERY_DATA=$D2 "$DRV" run "$D2" "$TUNERY" 90; rc=$?
read -r st2 model2 res2 _ < <("$DRV" status "$D2" "$J2")
check "resumed job succeeds" '[ $rc -eq 0 ] && [ "$st2" = succeeded ]'
m2=$(msgs "$D2" "$J2")
check "one 'Resumed from step N' event" '[ "$(grep -c "^Resumed from step [1-9][0-9]*$" <<<"$m2")" = 1 ]'
check "no duplicate events" '[ -z "$(sort <<<"$m2" | uniq -d)" ]'
# Same history as the uninterrupted run, plus the resume line (names differ by id/time).
norm() { sed -E "s/ft-[A-Za-z0-9]{24}/ID/; s/tiny:ft-personal-[0-9-]+/MODEL/; s/file-[A-Za-z0-9]{24}/FILE/; /^Resumed from step/d"; }
check "no gap: every event of the uninterrupted run" '[ "$(norm <<<"$m2")" = "$(norm <<<"$(msgs "$D1" "$J1")")" ]'
seqs=$("$DRV" events "$D2" "$J2" | cut -f1)
check "event ids strictly increase" '[ "$seqs" = "$(sort -n <<<"$seqs")" ]'
check "resumed loss curve equals the uninterrupted one" 'cmp -s "$D1/files/$res1" "$D2/files/$res2"'
if ! cmp -s "$D1/files/$res1" "$D2/files/$res2"; then diff "$D1/files/$res1" "$D2/files/$res2" | head -5; fi

# runs the scheduler on data dir $1 until it is idle, and sends signal $3 to
# job $2's worker half a second after it appears; sets w (the worker's pid)
# and rc (the scheduler's exit status)
run_and_signal() {
  TUNERY_DATA=$1 "$DRV" run "$1" "$TUNERY" 60 & host=$!; pids+=($host)
  w=""
  for _ in $(seq 1 300); do w=$(worker_pids "$2"); [ -n "$w" ] && break; sleep 0.1; done
  sleep 0.5
  [ -n "$w" ] && kill -"$3" $w
  wait $host; rc=$?
}

# ---- 3. kill -9 of the worker alone
D3=$(newdata c)
J3=$(TUNERY_DATA=$D3 DRIVER_EPOCHS=3 "$DRV" create "$D3" "$tmp/train.jsonl" tiny legacy)
run_and_signal "$D3" "$J3" KILL
read -r st3 _ < <("$DRV" status "$D3" "$J3")
err3=$("$DRV" status "$D3" "$J3" | cut -d' ' -f4-)
check "crashed worker: job failed, scheduler carries on" '[ -n "$w" ] && [ $rc -eq 0 ] && [ "$st3" = failed ]'
check "failure reason names the signal" 'grep -q "signal 9" <<<"$err3"'
check "Fine-tune failed event" '[ "$(msgs "$D3" "$J3" | tail -1)" = "Fine-tune failed" ]'

# ---- 3b. a worker that faults says where in its log (worker.log)
D3b=$(newdata cb)
J3b=$(TUNERY_DATA=$D3b DRIVER_EPOCHS=3 "$DRV" create "$D3b" "$tmp/train.jsonl" tiny legacy)
run_and_signal "$D3b" "$J3b" SEGV
err3b=$("$DRV" status "$D3b" "$J3b" | cut -d' ' -f4-)
check "faulting worker: job failed naming signal 11" '[ -n "$w" ] && [ $rc -eq 0 ] && grep -q "signal 11" <<<"$err3b"'
check "its worker.log has the stack" 'grep -q "fatal signal" "$D3b/jobs/$J3b/worker.log" && grep -q "tunery(+0x" "$D3b/jobs/$J3b/worker.log"'

# ---- 4. queue numbers and cancel
D4=$(newdata d)
J4a=$(TUNERY_DATA=$D4 DRIVER_EPOCHS=3 "$DRV" create "$D4" "$tmp/train.jsonl" tiny legacy)
J4b=$(TUNERY_DATA=$D4 DRIVER_EPOCHS=1 "$DRV" create "$D4" "$tmp/train.jsonl" tiny legacy)
TUNERY_DATA=$D4 "$DRV" run "$D4" "$TUNERY" 90 & host=$!; pids+=($host)
for _ in $(seq 1 300); do [ -n "$(worker_pids "$J4a")" ] && break; sleep 0.1; done
sleep 0.5
"$DRV" cancel "$D4" "$J4a"
wait $host; rc=$?
read -r st4a _ < <("$DRV" status "$D4" "$J4a")
read -r st4b _ < <("$DRV" status "$D4" "$J4b")
check "cancelled job is cancelled, the next one then runs" '[ $rc -eq 0 ] && [ "$st4a" = cancelled ] && [ "$st4b" = succeeded ]'
check "cancel cleans the work directory" '[ ! -e "$D4/jobs/$J4a" ]'
check "last event of the cancelled job" '[ "$(msgs "$D4" "$J4a" | tail -1)" = "Fine-tune cancelled" ]'
m4b=$(msgs "$D4" "$J4b")
check "second job enqueued at number 1, then 0" 'grep -q "^Fine-tune enqueued. Queue number: 1$" <<<"$m4b" && grep -q "^Fine-tune is in the queue. Queue number: 0$" <<<"$m4b"'
check "queue events before start" '[ "$(grep -n "Queue number: 0" <<<"$m4b" | cut -d: -f1)" -lt "$(grep -n "^Fine-tune started$" <<<"$m4b" | cut -d: -f1)" ]'

# ---- 5. current API: metrics events, checkpoints, pause and resume
D5=$(newdata e)
J5=$(TUNERY_DATA=$D5 DRIVER_EPOCHS=3 "$DRV" create "$D5" "$tmp/train.jsonl" tiny jobs)
TUNERY_DATA=$D5 "$DRV" run "$D5" "$TUNERY" 90 & host=$!; pids+=($host)
for _ in $(seq 1 600); do msgs "$D5" "$J5" | grep -q "^Completed epoch 1/3$" && break; sleep 0.1; done
"$DRV" pause "$D5" "$J5"
for _ in $(seq 1 100); do [ -z "$(worker_pids "$J5")" ] && break; sleep 0.1; done
read -r st5p _ < <("$DRV" status "$D5" "$J5")
check "pause stops the worker and keeps the job paused" '[ "$st5p" = paused ] && [ -z "$(worker_pids "$J5")" ]'
sleep 0.5
read -r st5p _ < <("$DRV" status "$D5" "$J5")
check "a paused job is not restarted" '[ "$st5p" = paused ] && [ -z "$(worker_pids "$J5")" ]'
"$DRV" resume "$D5" "$J5"
wait $host; rc=$?
read -r st5 model5 res5 _ < <("$DRV" status "$D5" "$J5")
check "resumed (current API) job succeeds" '[ $rc -eq 0 ] && [ "$st5" = succeeded ]'
check "current-API model name" '[[ "$model5" =~ ^ft:tiny:personal::[A-Za-z0-9]{8}$ ]]'
check "pause + resume gives the uninterrupted loss curve" 'cmp -s "$D1/files/$res1" "$D5/files/$res5"'
m5=$("$DRV" events "$D5" "$J5")
check "metrics events, one per step" '[ "$(grep -c "^[0-9]*	metrics	Step " <<<"$m5")" = "$(($(wc -l < "$D5/files/$res5") - 1))" ]'
check "no duplicate events after pause" '[ -z "$(cut -f3 <<<"$m5" | sort | uniq -d)" ]'
ck=$("$DRV" ckpts "$D5" "$J5")
ckpts_ok() { # every listed checkpoint: its directory loads (config.json), its name is the model's + :ckpt-step-N
  [ -n "$ck" ] || return 1
  local step name d prev=999999
  while IFS=$'\t' read -r step name d; do
    [ -f "$d/config.json" ] && [ "$name" = "$model5:ckpt-step-$step" ] && [ "$step" -lt "$prev" ] || return 1
    prev=$step
  done <<<"$ck"
}
check "checkpoints listed newest first, loadable, named" ckpts_ok

# ---- 6. clean shutdown of the scheduler mid-training
D6=$(newdata f)
J6=$(TUNERY_DATA=$D6 DRIVER_EPOCHS=3 "$DRV" create "$D6" "$tmp/train.jsonl" tiny legacy)
# The host is stopped (SIGTERM → sched_stop) once the first epoch is done and
# two remain, whatever the machine's speed: the worker gets SIGTERM, writes a
# checkpoint, exits, and the job goes back to the queue.
TUNERY_DATA=$D6 "$DRV" run "$D6" "$TUNERY" 90 & host=$!; pids+=($host)
for _ in $(seq 1 3000); do
  msgs "$D6" "$J6" | grep -q "^Completed epoch 1/3$" && break
  sleep 0.02
done
kill -TERM $host; wait $host; rc=$?
read -r st6b _ < <("$DRV" status "$D6" "$J6")
check "sched_stop re-queues a running job" '[ $rc -eq 1 ] && [ "$st6b" = queued ] && [ -z "$(worker_pids "$J6")" ]'
TUNERY_DATA=$D6 "$DRV" run "$D6" "$TUNERY" 90; rc=$?
read -r st6c _ res6 _ < <("$DRV" status "$D6" "$J6")
check "after a clean stop the job resumes and succeeds" '[ $rc -eq 0 ] && [ "$st6c" = succeeded ]'
check "clean stop: same loss curve" 'cmp -s "$D1/files/$res1" "$D6/files/$res6"'
check "clean stop: no duplicate events" '[ -z "$(msgs "$D6" "$J6" | sort | uniq -d)" ]'

# ---- 7. tunery keys
D7=$tmp/k
key=$("$TUNERY" keys create --org "Acme Co" --data "$D7" 2>/dev/null)
check "keys create prints one sk- key" '[[ "$key" =~ ^sk-[A-Za-z0-9]{48}$ ]]'
list=$("$TUNERY" keys list --data "$D7")
kid=$(awk 'NR==2 {print $1}' <<<"$list")
check "keys list shows the key by id and hint, not the secret" 'grep -q "Acme Co" <<<"$list" && ! grep -q "$key" <<<"$list" && [[ "$kid" =~ ^key- ]]'
"$TUNERY" keys revoke "$kid" --data "$D7" 2>/dev/null
check "keys revoke" '"$TUNERY" keys list --data "$D7" | grep -q revoked'
"$TUNERY" keys revoke "$kid" --data "$D7" 2>/dev/null; rc=$?
check "revoking twice fails" '[ $rc -ne 0 ]'
"$TUNERY" keys create --data "$D7" >/dev/null 2>&1; rc=$?
check "keys create without --org fails" '[ $rc -ne 0 ]'

# ---- 8. bad base model; continued fine-tuning (reuses run 1's data dir)
J8=$(TUNERY_DATA=$D1 DRIVER_EPOCHS=1 "$DRV" create "$D1" "$tmp/train.jsonl" no-such-model legacy)
J9=$(TUNERY_DATA=$D1 DRIVER_EPOCHS=1 "$DRV" create "$D1" "$tmp/train.jsonl" "$model1" legacy)
TUNERY_DATA=$D1 "$DRV" run "$D1" "$TUNERY" 60
read -r st8 _ < <("$DRV" status "$D1" "$J8")
err8=$("$DRV" status "$D1" "$J8" | cut -d' ' -f4-)
check "unknown base model: failed, and the reason names it" '[ "$st8" = failed ] && grep -q "no-such-model" <<<"$err8" && [ "$(msgs "$D1" "$J8" | tail -1)" = "Fine-tune failed" ]'
read -r st9 model9 _ < <("$DRV" status "$D1" "$J9")
check "continued fine-tune succeeds under the root base name" '[ "$st9" = succeeded ] && [[ "$model9" =~ ^tiny:ft-personal-[0-9-]+$ ]] && [ "$model9" != "$model1" ]'
grep -q "\"base\": *\"$D1/models/$model1\"" "$D1/models/$model9/tunery.json" 2>/dev/null
check "continued fine-tune started from the fine-tuned weights" '[ $? -eq 0 ]'

# ---- 9. two jobs at once, finishing in (about) the same second
D9=$(newdata g)
Ja=$(TUNERY_DATA=$D9 DRIVER_EPOCHS=1 "$DRV" create "$D9" "$tmp/train.jsonl" tiny legacy)
Jb=$(TUNERY_DATA=$D9 DRIVER_EPOCHS=1 "$DRV" create "$D9" "$tmp/train.jsonl" tiny legacy)
TUNERY_DATA=$D9 DRIVER_CONCURRENT=2 "$DRV" run "$D9" "$TUNERY" 60; rc=$?
read -r sta ma _ < <("$DRV" status "$D9" "$Ja")
read -r stb mb _ < <("$DRV" status "$D9" "$Jb")
check "concurrent jobs both succeed with distinct models" '[ $rc -eq 0 ] && [ "$sta" = succeeded ] && [ "$stb" = succeeded ] && [ "$ma" != "$mb" ] && [ -f "$D9/models/$ma/config.json" ] && [ -f "$D9/models/$mb/config.json" ]'

echo "sched integration: $passed passed, $failed failed"
[ $failed -eq 0 ]
