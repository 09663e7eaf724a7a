#!/usr/bin/env bash
# Reference outputs: five public notebooks' own inputs and published results
# (test/reference/*/, see test/reference/README.md). Each notebook's raw rows,
# duplicates included, go the way users send them: produced with kcat to the
# embedded broker and consumed by the worker. Then every published table
# that the notebook's verify field says reproduces fully with duplicates
# dropped must come out of the matching pinpipe analytics function
# (test/reference/compare.sql); the others are skipped with the reason.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
trap 'pp_set pinpipe.brokers "" >/dev/null 2>&1; pp_brokers_stop' EXIT

ok=0
skipped=0
n=0
for dir in test/reference/*/; do
	name=$(basename "$dir")
	n=$((n + 1))
	prefix=ref$n
	echo "$name:"
	pp_reset_pinpipe
	pp_broker_start "$prefix" --partitions 3 --prefix "$prefix" || exit 1
	for t in pin geo user; do
		pp_keyed "$dir/${t}_raw.jsonl" | kcat -b "$PP_BROKER" -P -t "$prefix.$t" -K $'\t' || exit 1
	done
	npin=$(wc -l <"$dir/pin_raw.jsonl")
	ngeo=$(wc -l <"$dir/geo_raw.jsonl")
	nuser=$(wc -l <"$dir/user_raw.jsonl")
	pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix "$prefix"
	pp_wait_for 120 "SELECT (SELECT count(*) FROM pinpipe.pin_raw) = $npin
	                    AND (SELECT count(*) FROM pinpipe.geo_raw) = $ngeo
	                    AND (SELECT count(*) FROM pinpipe.user_raw) = $nuser" || PP_FAILED=$((PP_FAILED + 1))
	pp_check "$name: the worker stored all $npin + $ngeo + $nuser messages, no dead letters" \
		"SELECT (SELECT count(*) FROM pinpipe.pin_raw) = $npin AND (SELECT count(*) FROM pinpipe.geo_raw) = $ngeo
		    AND (SELECT count(*) FROM pinpipe.user_raw) = $nuser AND (SELECT count(*) FROM pinpipe.dead_letters) = 0"
	pp_check "$name: duplicates dropped, one clean row per ind" \
		"SELECT (SELECT count(*) FROM pinpipe.pin_clean) = (SELECT count(DISTINCT \"index\") FROM pinpipe.pin_raw)
		    AND (SELECT count(*) FROM pinpipe.geo_clean) = (SELECT count(DISTINCT ind) FROM pinpipe.geo_raw)
		    AND (SELECT count(*) FROM pinpipe.user_clean) = (SELECT count(DISTINCT ind) FROM pinpipe.user_raw)"
	pp_check "$name: the analytics caches equal the plain-SQL definitions" \
		"SELECT bool_and(matches) FROM pinpipe.analytics_check()"

	out=$(psql -X -q -d postgres -v outputs="$(cat "$dir/outputs.json")" -f test/reference/compare.sql 2>&1)
	if [ -z "$out" ] || ! grep -qE '^q[0-9]+b? (ok|FAILED|skipped):' <<<"$out"; then
		echo "  FAILED: $name: compare.sql ($out)"
		PP_FAILED=$((PP_FAILED + 1))
		continue
	fi
	while IFS= read -r line; do
		q=${line%% *}
		rest=${line#* }
		case $rest in
		ok:*) echo "  ok: $name $q: ${rest#ok: }"; ok=$((ok + 1)) ;;
		skipped:*) echo "  skipped: $name $q: ${rest#skipped: }"; skipped=$((skipped + 1)) ;;
		*) echo "  FAILED: $name $q: ${rest#FAILED: }"; PP_FAILED=$((PP_FAILED + 1)) ;;
		esac
	done <<<"$out"
done

echo "reference tables: $ok reproduced, $skipped skipped, $PP_FAILED failed checks"
# every notebook must have been read, and at least the tables known to reproduce
if [ "$n" != 5 ] || [ "$ok" -lt 12 ]; then
	echo "  FAILED: expected 5 notebooks and 12 reproducible tables (got $n, $ok)"
	PP_FAILED=$((PP_FAILED + 1))
fi
exit $((PP_FAILED > 0))
