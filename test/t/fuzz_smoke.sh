#!/usr/bin/env bash
# CI smoke run of the fuzzers (test/fuzz: rules, decode and the front door's
# request decoding, rest): build them, replay every seed and
# every regression input once, fuzz each target for 20 seconds from a scratch
# copy of its seed corpus, and check the hostile corpus (test/hostile) at the
# decoder level. Exits non-zero on any crash, leak, invariant violation or
# unexpected fate. Needs clang-14, libclang-rt-14-dev and libjansson-dev; no
# PostgreSQL server. Crashing inputs are kept in test/fuzz/corpus-work/.
set -u
cd "$(dirname "$0")/../.." || exit 1

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

make -s fuzz || exit 1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts=test/fuzz/corpus-work
mkdir -p "$artifacts"
status=0

# run_fuzzer TARGET WHAT ARGS...: run test/fuzz/fuzz_TARGET, report a failure
run_fuzzer() {
	local target=$1 what=$2 out="$work/$1-${2%% *}.log"
	shift 2
	local summary
	if test/fuzz/fuzz_"$target" -timeout=10 -artifact_prefix="$artifacts/smoke-$target-" "$@" \
		>"$out" 2>&1; then
		summary=$(grep -aE '^#[0-9]+' "$out" | tail -n 1 | tr -s ' \t' ' ' | cut -d' ' -f1-12)
		[ -n "$summary" ] || summary="$(grep -acE '^Executed ' "$out") inputs ran"
		log "ok   fuzz_$target $what: $summary"
	else
		log "FAIL fuzz_$target $what; its output ends with:"
		tail -n 40 "$out" >&2
		status=1
	fi
}

for target in rules decode rest; do
	inputs=(test/fuzz/corpus/"$target"/*)
	if [ -d test/fuzz/regressions/"$target" ]; then
		for f in test/fuzz/regressions/"$target"/*; do
			[ -f "$f" ] && inputs+=("$f")
		done
	fi
	run_fuzzer "$target" "replay of ${#inputs[@]} seeds and regressions" "${inputs[@]}"

	mkdir "$work/$target"
	cp test/fuzz/corpus/"$target"/* "$work/$target"/
	run_fuzzer "$target" "20 s" -max_total_time=20 -print_final_stats=1 "$work/$target"
done

if bash test/hostile/make.sh "$work/hostile" &&
	test/fuzz/hostile_check test/hostile/EXPECTED test/hostile "$work/hostile" >"$work/hostile.log"; then
	log "ok   $(tail -n 1 "$work/hostile.log")"
else
	log "FAIL hostile_check:"
	grep -sv '^ok' "$work/hostile.log" >&2
	status=1
fi
exit $status
