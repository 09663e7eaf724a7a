#!/usr/bin/env bash
# test/run.sh: the whole test suite, from a fresh Debian 12 machine.
#
# Installs the packages it needs, builds pinpipe and installs it into a
# private copy of the server tree (test/lib.sh), then, as an unprivileged user
# (PostgreSQL refuses to run as root):
#   - the pg_regress suites (sql/, expected/) with `make check`, which starts
#     its own server (--temp-instance, test/regress.conf);
#   - every TAP test test/t/*.pl with prove, each starting its own nodes
#     (PostgreSQL::Test::Cluster, test/perl/PinPipe/Test.pm) and brokers.
# Ends with "N passed, N failed" (one per suite or test file).
#
#   bash test/run.sh              everything
#   bash test/run.sh records ingest
#                                 only the named pg_regress suites / test/t tests
#   bash test/run.sh --sanitize [NAME...]
#                                 the same with the extension built with ASan and
#                                 UBSan (see test/lib.sh); any sanitizer report
#                                 fails the test it came in
#
# PP_KEEP=1 keeps the work directory (logs, data directories) even on success.
set -uo pipefail
if [ "${1:-}" = --sanitize ]; then
	export PP_SANITIZE=1
	shift
fi
export PP_PRIVATE_INSTALL=1
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"

pp_install_deps || exit 1
# Packages only some tests need: valgrind (test/t/valgrind.pl), clang-14 and
# its libFuzzer runtime (test/t/fuzz_smoke.pl).
PP_PACKAGES="valgrind clang-14 libclang-rt-14-dev" pp_install_deps || exit 1
pp_log "building"
if ! pp_build; then
	[ -n "${PP_PRIVATE_ROOT:-}" ] && rm -rf "$PP_PRIVATE_ROOT"
	echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi
if [ -n "${PP_SANITIZE:-}" ]; then
	[[ $(nm -D "$("$PP_BIN/pg_config" --pkglibdir)/pinpipe.so") == *__asan_init* ]] ||
		{ echo "the installed pinpipe.so is not instrumented"; echo "0 passed, 1 failed"; exit 1; }
	pp_log "sanitizers on: extension built with ASan and UBSan, server tree $PP_PRIVATE_ROOT"
fi

PP_SERVER_USER=$(pp_server_user)
PP_WORK=$(mktemp -d /tmp/pinpipe-test.XXXXXX)
chmod 755 "$PP_WORK"
chown "$PP_SERVER_USER" "$PP_WORK" 2>/dev/null || true
# The tests run as the server user in a copy of the checkout that it owns
# (the checkout may be unreadable to it, and tests write beside their
# sources), with the private server tree owned by it too.
mkdir -p "$PP_WORK/tree"
tar -C "$PP_TOP" --exclude=./.git -cf - . | tar -C "$PP_WORK/tree" -xf -
chown -R "$PP_SERVER_USER" "$PP_WORK" "$PP_PRIVATE_ROOT" 2>/dev/null || true
export PP_WORK PP_SERVER_USER
cleanup() {
	pkill -u "$PP_SERVER_USER" -f "$PP_WORK" 2>/dev/null
	[ -n "${PP_PRIVATE_ROOT:-}" ] && rm -rf "$PP_PRIVATE_ROOT"
}
trap cleanup EXIT

# What to run: pg_regress suites (sql/NAME.sql) and TAP tests (test/t/NAME.pl).
suites=()
taps=()
if [ $# -gt 0 ]; then
	for t in "$@"; do
		if [ -f "sql/$t.sql" ]; then suites+=("$t"); elif [ -f "test/t/$t.pl" ]; then taps+=("test/t/$t.pl"); else
			echo "no test named $t"; exit 2
		fi
	done
else
	suites=($(sed -n 's/^REGRESS = //p' Makefile))
	taps=(test/t/*.pl)
fi

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); echo "ok $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAILED $1"; }

pgxs=$(dirname "$(dirname "$("$PP_BIN/pg_config" --pgxs)")")   # .../lib/pgxs/src
if [ ${#suites[@]} -gt 0 ]; then
	pp_log "pg_regress: ${suites[*]}"
	mkdir -p "$PP_WORK/regress" && chown "$PP_SERVER_USER" "$PP_WORK/regress" 2>/dev/null
	(cd "$PP_WORK/tree" && pp_as_server env PATH="$PP_BIN:$PATH" make -s check PG_CONFIG="$PP_BIN/pg_config" \
		PP_REGRESS_DIR="$PP_WORK/regress" REGRESS="${suites[*]}") >"$PP_WORK/regress.out" 2>&1
	cat "$PP_WORK/regress.out"
	sanitizer_ok=true
	pp_sanitizer_reports "$PP_WORK/regress/log" || sanitizer_ok=false
	for s in "${suites[@]}"; do
		if grep -Eq "^(ok|test) +[0-9]* *[-]* *$s +\.\.\. ok|^ok +[0-9]+ +[-+] +$s " "$PP_WORK/regress.out" &&
			$sanitizer_ok; then
			pass "pg_regress $s"
		else
			fail "pg_regress $s"
		fi
	done
	[ -f "$PP_WORK/regress/regression.diffs" ] && head -200 "$PP_WORK/regress/regression.diffs"
fi

for t in "${taps[@]}"; do
	name=$(basename "$t" .pl)
	pp_log "test $name"
	dir=$PP_WORK/tap/$name
	mkdir -p "$dir" && chown -R "$PP_SERVER_USER" "$PP_WORK/tap" 2>/dev/null
	rc=0
	(cd "$PP_WORK/tree" && pp_as_server env PATH="$PP_BIN:$PATH" PERL5LIB="$PP_WORK/tree/test/perl:$pgxs/test/perl" \
		TESTDIR="$dir" PG_REGRESS="$pgxs/test/regress/pg_regress" PP_SANITIZE="${PP_SANITIZE:-}" \
		PP_PRIVATE_ROOT="$PP_PRIVATE_ROOT" PP_BIN="$PP_BIN" prove -v "$t") >"$PP_WORK/$name.out" 2>&1 || rc=1
	pp_sanitizer_reports "$dir/tmp_check/log" >>"$PP_WORK/$name.out" 2>&1 || rc=1
	if [ "$rc" = 0 ]; then
		pass "$name"
	else
		fail "$name"
		echo "its output ends with:"
		tail -50 "$PP_WORK/$name.out"
	fi
done

for f in "${failures[@]}"; do echo "failed: $f"; done
if [ "$failed" = 0 ] && [ -z "${PP_KEEP:-}" ]; then
	rm -rf "$PP_WORK"
else
	echo "logs kept in $PP_WORK"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
