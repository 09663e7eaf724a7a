#!/usr/bin/env bash
# The README's demo command runs to completion (short mode) and its output
# contains the ingestion progress and the cleaned row counts.
set -u
cd "$(dirname "$0")/../.."
out=$(bash test/demo.sh --short 2>&1)
rc=$?
failed=0
check() { if grep -qE "$2" <<<"$out"; then echo "  ok: $1"; else echo "  FAILED: $1"; failed=1; fi; }
[ $rc = 0 ] && echo "  ok: demo exited 0" || { echo "  FAILED: demo exited $rc"; failed=1; }
check "progress table shown" 'seconds +messages +rows +lag +dead_letters'
check "all 900 messages consumed, lag 0" '^ +[0-9]+ +900 +900 +0 +0$'
check "emulator summary" 'pinpipe-emulate: 300 records; delivered pinterest.pin 300'
check "cleaned counts printed" '^pin_clean \| [0-9]+$'
check "raw counts printed" '^pin_raw \| 300$'
check "no dead letters" '^dead_letters \| 0$'
check "the dashboard's URL printed" '^open http://127\.0\.0\.1:[0-9]+/ '
[ $failed = 0 ] || tail -40 <<<"$out"
exit $failed
