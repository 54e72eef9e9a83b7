#!/bin/sh
# Runs unit-test binaries, prints each one's output, and closes with the total
# "N passed, N failed" line CI reads. Exit status is non-zero if any failed or crashed.
# Usage: tests/run.sh BUILD_DIR test-binary...
build="$1"; shift
export TUNERY_SHARE="${TUNERY_SHARE:-$(pwd)/data}"
passed=0; failed=0; crashed=0
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -v '^ok ' 
  line=$(printf '%s\n' "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -z "$line" ]; then
    echo "CRASH $t (exit $rc, no summary line)"; crashed=$((crashed + 1)); continue
  fi
  p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/')
  f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/')
  passed=$((passed + p)); failed=$((failed + f))
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && { echo "CRASH $t (exit $rc)"; crashed=$((crashed + 1)); }
done
failed=$((failed + crashed))
echo "unit tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
