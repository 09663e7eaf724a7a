#!/usr/bin/env bash
# test/valgrind_tools.sh: the tools under valgrind (memcheck, full leak check):
# pinpipe-broker serving produce and consume, pinpipe-emulate posting normal
# and synthetic records, and a dry run. Prints each tool's error and leak
# summary; exits non-zero on any error or definitely lost block.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"
command -v valgrind >/dev/null || pp_as_root apt-get install -y -qq valgrind >/dev/null
make -s src/bin/pinpipe-broker src/bin/pinpipe-emulate
work=$(mktemp -d)
trap 'kill $broker 2>/dev/null; rm -rf "$work"' EXIT
VG="valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=99 --quiet"
failed=0

$VG --log-file="$work/broker.vg" src/bin/pinpipe-broker --quiet --partitions 2 --prefix vg \
	--bootstrap-file "$work/bootstrap" --control "$work/ctl" >/dev/null 2>&1 &
broker=$!
for _ in $(seq 300); do [ -s "$work/bootstrap" ] && break; sleep 0.1; done
B=$(cat "$work/bootstrap")
$VG --log-file="$work/emulate.vg" src/bin/pinpipe-emulate --brokers "$B" --prefix vg --data data --count 300 --seed 1 --quiet ||
	failed=1
$VG --log-file="$work/synthetic.vg" src/bin/pinpipe-emulate --brokers "$B" --prefix vg --data data --synthetic --count 300 --seed 2 --quiet ||
	failed=1
$VG --log-file="$work/dryrun.vg" src/bin/pinpipe-emulate --dry-run --data data --synthetic --count 1000 >/dev/null 2>&1 || failed=1
n=$(kcat -b "$B" -C -t vg.pin -o beginning -e -q | wc -l)
[ "$n" = 600 ] || { echo "consumed $n of 600 from the broker under valgrind"; failed=1; }
echo "status" >"$work/ctl"
kill -TERM $broker
wait $broker || failed=1
for f in "$work"/*.vg; do
	if [ -s "$f" ]; then echo "== $(basename "$f" .vg): valgrind reported:"; cat "$f"; failed=1; else
		echo "== $(basename "$f" .vg): no errors, no leaks"; fi
done
exit $failed
