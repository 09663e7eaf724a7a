#!/usr/bin/env bash
# test/bench_clean.sh: ns per call of each C cleaning function against the
# same logic written as a plain SQL expression, on 1M rows, in one run.
# A benchmark, not a test: it prints figures. Usage: bash test/bench_clean.sh [ROWS]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"
ROWS=${1:-1000000}

pp_install_deps
pp_build
PP_WORK=$(mktemp -d /tmp/pinpipe-bench.XXXXXX)
trap 'pp_cluster_stop; rm -rf "$PP_WORK"' EXIT
pp_cluster_start </dev/null
pp_psql -c "CREATE EXTENSION pinpipe" >/dev/null

echo "building $ROWS rows from the sample data..."
pp_psql >/dev/null <<SQL
CREATE TEMP TABLE s (doc jsonb);
\copy s FROM 'data/pin.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
CREATE TEMP TABLE u (doc jsonb);
\copy u FROM 'data/user.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
CREATE TEMP TABLE g (doc jsonb);
\copy g FROM 'data/geo.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
CREATE TABLE bench AS
SELECT p.doc->>'follower_count' AS fc, p.doc->>'description' AS descr,
       p.doc->>'save_location' AS loc, (gg.doc->>'latitude')::float8 AS lat,
       (gg.doc->>'longitude')::float8 AS lon, uu.doc->>'first_name' AS first,
       uu.doc->>'last_name' AS last, (uu.doc->>'age')::int AS age, gg.doc->>'timestamp' AS ts
  FROM generate_series(0, $ROWS - 1) i
  JOIN (SELECT row_number() OVER () - 1 AS n, doc FROM s) p ON p.n = i % 2482
  JOIN (SELECT row_number() OVER () - 1 AS n, doc FROM g) gg ON gg.n = i % 11154
  JOIN (SELECT row_number() OVER () - 1 AS n, doc FROM u) uu ON uu.n = i % 11154;
VACUUM ANALYZE bench;
SQL

# time (ms) of one query, best of 3
best_ms() {
	local best=
	for _ in 1 2 3; do
		ms=$(psql -X -At -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
		if [ -z "$best" ] || awk -v a="$ms" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$ms; fi
	done
	echo "$best"
}

SET="SET max_parallel_workers_per_gather = 0; SET jit = off;"
declare -a NAMES C SQL BASE
add() { NAMES+=("$1"); BASE+=("$2"); C+=("$3"); SQL+=("$4"); }
add clean_follower_count "count(fc)" "count(pinpipe.clean_follower_count(fc))" \
	"count(CASE WHEN btrim(fc) ~ '^[0-9]+\$' THEN btrim(fc)::bigint
	            WHEN btrim(fc) ~ '^[0-9]+(\.[0-9]+)?[kKmMbB]\$' THEN
	              trunc(left(btrim(fc), -1)::numeric * CASE lower(right(btrim(fc), 1)) WHEN 'k' THEN 1000 WHEN 'm' THEN 1000000 ELSE 1000000000 END)::bigint END)"
add clean_text "count(descr)" "count(pinpipe.clean_text(descr))" \
	"count(CASE WHEN btrim(descr) = '' OR btrim(descr) IN ('No Title Data Available', 'No description available Story format',
	  'No description available', 'Untitled', 'User Info Error', 'Image src error.', 'N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e') THEN NULL ELSE descr END)"
add clean_save_location "count(loc)" "count(pinpipe.clean_save_location(loc))" \
	"count(CASE WHEN loc LIKE 'Local save in %' THEN substr(loc, 15) ELSE loc END)"
add make_coordinates "count(lat) + count(lon)" "count(pinpipe.make_coordinates(lat, lon))" \
	"count(CASE WHEN abs(lat) <= 90 AND abs(lon) <= 180 THEN ARRAY[lat, lon] END)"
add make_user_name "count(first) + count(last)" "count(pinpipe.make_user_name(first, last))" \
	"count(nullif(concat_ws(' ', nullif(btrim(first), ''), nullif(btrim(last), '')), ''))"
add age_group "count(age)" "count(pinpipe.age_group(age))" \
	"count(CASE WHEN age < 18 THEN NULL WHEN age <= 24 THEN '18-24' WHEN age <= 35 THEN '25-35' WHEN age <= 50 THEN '36-50' ELSE '+50' END)"
add parse_timestamp "count(ts)" "count(pinpipe.parse_timestamp(ts))" \
	"count(CASE WHEN ts ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?\$' THEN ts::timestamp END)"

printf '\n%-22s %12s %12s %10s\n' function "C ns/call" "SQL ns/call" "SQL/C"
for i in "${!NAMES[@]}"; do
	b=$(best_ms "$SET SELECT ${BASE[$i]} FROM bench")
	c=$(best_ms "$SET SELECT ${C[$i]} FROM bench")
	s=$(best_ms "$SET SELECT ${SQL[$i]} FROM bench")
	awk -v n="${NAMES[$i]}" -v b="$b" -v c="$c" -v s="$s" -v r="$ROWS" 'BEGIN {
		cn = (c - b) * 1e6 / r; sn = (s - b) * 1e6 / r; if (cn < 0.1) cn = 0.1;
		printf "%-22s %12.1f %12.1f %9.1fx\n", n, cn, sn, sn / cn }'
done
