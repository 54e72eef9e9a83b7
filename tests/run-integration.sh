#!/bin/bash
# Runs each integration suite (tests/<dir>/integration.sh) from the repo root
# with TUNERY_BIN and TUNERY_SHARE set, and closes with the total line CI reads.
# A suite's closing line is "<name>: N passed, N failed" (node --test's
# "# pass N" / "# fail N" lines are understood too). A suite that exits
# non-zero with no failures counted is counted as one failure.
root=$(pwd)
export TUNERY_BIN="$root/tunery" TUNERY_SHARE="${TUNERY_SHARE:-$root/data}"
passed=0; failed=0
for s in "$@"; do
  echo "== $s"
  out=$(mktemp)
  bash "$s" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  line=$(grep -E ': [0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
  if [ -n "$line" ]; then
    p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/' <<<"$line")
    f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/' <<<"$line")
  else
    p=$(grep -E '^# pass [0-9]+' "$out" | tail -n 1 | awk '{print $3}')
    f=$(grep -E '^# fail [0-9]+' "$out" | tail -n 1 | awk '{print $3}')
  fi
  [ -z "$p" ] && { p=0; f=0; }
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "FAIL $s (exit $rc)"; f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  rm -f "$out"
done
echo "integration tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
