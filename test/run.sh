#!/usr/bin/env bash
# test/run.sh: the whole test suite, from a fresh Debian 12 machine.
#
# Installs the packages it needs, builds and installs pinpipe, starts a
# throwaway PostgreSQL cluster (as an unprivileged user when run as root) with
# pinpipe preloaded, runs every pg_regress suite and every test in test/t/,
# stops the cluster and ends with "N passed, N failed".
#
#   bash test/run.sh              everything
#   bash test/run.sh records      only the named pg_regress suites / test/t scripts
#   bash test/run.sh --sanitize [NAME...]
#                                 the same with the extension built with ASan and
#                                 UBSan, in a private server tree (see test/lib.sh);
#                                 any sanitizer report fails the test it came in
set -uo pipefail
if [ "${1:-}" = --sanitize ]; then
	export PP_SANITIZE=1
	shift
fi
# Tests install into a private server tree (test/lib.sh, pp_build).
export PP_PRIVATE_INSTALL=1
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"

pp_install_deps || exit 1
pp_log "building"
if ! pp_build; then
	[ -n "${PP_PRIVATE_ROOT:-}" ] && rm -rf "$PP_PRIVATE_ROOT"
	echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi

PP_WORK=$(mktemp -d /tmp/pinpipe-test.XXXXXX)
cleanup() {
	pp_cluster_stop
	[ -n "${PP_PRIVATE_ROOT:-}" ] && rm -rf "$PP_PRIVATE_ROOT"
}
trap cleanup EXIT
pp_log "starting a throwaway cluster in $PP_WORK"
pp_cluster_start </dev/null || { echo "0 passed, 1 failed"; exit 1; }
if [ -n "${PP_SANITIZE:-}" ]; then
	[[ $(nm -D "$("$PP_BIN/pg_config" --pkglibdir)/pinpipe.so") == *__asan_init* ]] ||
		{ echo "the installed pinpipe.so is not instrumented"; echo "0 passed, 1 failed"; exit 1; }
	grep -q libasan "/proc/$(head -1 "$PP_PGDATA/postmaster.pid")/maps" ||
		{ echo "the server runs without the ASan runtime"; echo "0 passed, 1 failed"; exit 1; }
	pp_log "sanitizers on: extension built with ASan and UBSan, server tree $PP_PRIVATE_ROOT"
fi

passed=0
failed=0
failures=()

# pg_regress suites
suites=()
scripts=()
if [ $# -gt 0 ]; then
	for t in "$@"; do
		if [ -f "sql/$t.sql" ]; then suites+=("$t"); elif [ -f "test/t/$t.sh" ]; then scripts+=("test/t/$t.sh"); else
			echo "no test named $t"; exit 2
		fi
	done
else
	suites=($(sed -n 's/^REGRESS = //p' Makefile))
	scripts=(test/t/*.sh)
fi

if [ ${#suites[@]} -gt 0 ]; then
	pp_log "pg_regress: ${suites[*]}"
	# pg_regress writes results/ and regression.diffs here; keep them readable
	make -s installcheck REGRESS="${suites[*]}" >"$PP_WORK/regress.out" 2>&1
	cat "$PP_WORK/regress.out"
	sanitizer_ok=true
	pp_sanitizer_reports || sanitizer_ok=false
	for s in "${suites[@]}"; do
		if grep -Eq "^(ok|test) +[0-9]* *[-]* *$s +\.\.\. ok|^ok +[0-9]+ +[-+] +$s " "$PP_WORK/regress.out" &&
			$sanitizer_ok; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1)); failures+=("pg_regress $s")
		fi
	done
	[ -f regression.diffs ] && head -200 regression.diffs
fi

for t in "${scripts[@]}"; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .sh)
	pp_log "test $name"
	rc=0
	bash "$t" >"$PP_WORK/$name.out" 2>&1 || rc=1
	pp_sanitizer_reports >>"$PP_WORK/$name.out" 2>&1 || rc=1
	if [ "$rc" = 0 ]; then
		passed=$((passed + 1))
		echo "ok $name"
	else
		failed=$((failed + 1)); failures+=("$name")
		echo "FAILED $name; its output:"
		tail -50 "$PP_WORK/$name.out"
	fi
done

for f in "${failures[@]}"; do echo "failed: $f"; done
if [ "$failed" = 0 ]; then
	trap - EXIT
	cleanup
	rm -rf "$PP_WORK"
else
	echo "logs kept in $PP_WORK"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
