#!/usr/bin/env bash
# test/bench_perf.sh: the benchmark of issues 7 and 16. On one machine, with the same
# data (synthetic emulator rows, pin:geo:user = 1:1:1), in one run:
#   1. limit:   the same raw and clean rows COPY'd FROM files into the same
#               tables (same primary keys), one transaction per batch of
#               pinpipe.batch_size messages; no Kafka, no JSON;
#      pure:    the database's pure write limit: the same rows COPY'd FROM
#               the same files in ONE transaction into tables created
#               LIKE pinpipe.<table> INCLUDING ALL (indexes and constraints,
#               no triggers, so no analytics);
#   2. pinpipe: the worker draining a pre-loaded backlog from the embedded
#               broker, exactly-once offsets on, at 1 and 2 workers;
#   3. naive:   kcat -C ... -e | psql -c "COPY ..." into jsonb staging tables,
#               then INSERT ... SELECT into the raw tables and INSERT ... ON
#               CONFLICT into the clean tables, the cleaning written as plain
#               SQL expressions;
# for N = 100k and 1M messages, plus the worker's peak memory and the
# end-to-end latency (produce time to commit of the clean row) at steady
# rates (5000 and 20000 messages/s), the producer starting with the worker so
# that the first messages after a start count. Targets (issue 16) are printed
# as ratios measured in this run. A benchmark, not a test: it prints a table (and exits
# non-zero only when a correctness check fails or something breaks).
#
#   bash test/bench_perf.sh [--quick] [--sizes "N ..."] [--workers "W ..."]
#                           [--repeat R] [--latency-seconds S] [--latency-rates "R ..."]
#                           [--disable-triggers] [--profile FILE] [--set NAME=VALUE]...
#
#   --quick              N = 100k only (for trying it out)
#   --sizes "N ..."      backlog sizes in messages (default "100000 1000000")
#   --workers "W ..."    pinpipe.workers values (default "1 2")
#   --repeat R           runs of each throughput measurement; the table shows
#                        the median (default 3)
#   --latency-seconds S  length of each latency run (default 20; 0: none)
#   --latency-rates "R ..." messages/s of the latency runs (default "5000 20000")
#   --disable-triggers   disable the user triggers of the six tables (for all
#                        three), to measure the ingest path alone; by default
#                        they fire, and the report lists them
#   --set NAME=VALUE     a server setting for the whole run (ALTER SYSTEM), e.g.
#                        --set pinpipe.batch_timeout=20ms; repeatable
#   --profile FILE       after the measurements of the largest N, one more
#                        drain (not counted) at the first worker count with
#                        perf recording the worker (cpu-clock, DWARF call
#                        graphs) into FILE; prints the top functions
#
# Runs as root (the cluster runs as user pinpipe, see test/lib.sh), on its own
# throwaway cluster, brokers and temporary directory, all removed on exit.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"

SIZES="100000 1000000"
WORKER_COUNTS="1 2"
LAT_SECS=20
LAT_RATES="5000 20000" # messages/s; each emulator record is 3 messages (pin, geo, user)
LAT_PARTS=48
PROFILE=
QUICK=0
REPEAT=
NO_TRIGGERS=0
SETS=()

usage() { sed -n '/^#   bash test/,/^# Runs as root/p' "$0" | sed 's/^# \{0,1\}//' | sed '$d'; }
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 SIZES=100000 ;;
	--sizes) SIZES=$2 && shift ;;
	--workers) WORKER_COUNTS=$2 && shift ;;
	--repeat) REPEAT=$2 && shift ;;
	--disable-triggers) NO_TRIGGERS=1 ;;
	--latency-seconds) LAT_SECS=$2 && shift ;;
	--latency-rates) LAT_RATES=$2 && shift ;;
	--profile) PROFILE=$(realpath -m "$2") && shift ;;
	--set) SETS+=("$2") && shift ;;
	-h | --help) usage && exit 0 ;;
	*) usage >&2 && exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "bench_perf.sh: run it as root (the cluster runs as user pinpipe)" >&2; exit 2; }
if [ -n "$PROFILE" ] && ! perf stat -e cpu-clock true >/dev/null 2>&1; then
	echo "bench_perf.sh: --profile needs a working perf (Debian: apt-get install linux-perf)" >&2
	exit 2
fi
umask 022
T_BEGIN=$SECONDS
LOAD_BEGIN=$(cut -d' ' -f1-3 /proc/loadavg)

pp_log "installing dependencies and building pinpipe..."
pp_install_deps
pp_build
# make install writes the system's pinpipe.so: say so if it changes during the run
so_sum() { md5sum "$("$PP_BIN/pg_config" --pkglibdir 2>/dev/null || pg_config --pkglibdir)/pinpipe.so" | cut -c1-12; }
SO_BEGIN=$(so_sum)

PP_WORK=$(mktemp -d /tmp/pinpipe-perf.XXXXXX)
POLL_PID=
PERF_PID=
FAILED=0
cleanup() {
	set +e
	[ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
	declare -F poll_stop >/dev/null && poll_stop
	pp_brokers_stop
	pp_cluster_stop
	rm -rf "$PP_WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
fmt_rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
fail() {
	echo "  CHECK FAILED: $*" >&2
	FAILED=$((FAILED + 1))
}

# ---- PostgreSQL ----

# Other sessions start clusters on this machine too: start from a random port
# (test/lib.sh takes the first free one from there) and retry on a lost race.
for try in 1 2 3; do
	PGPORT=$((56000 + RANDOM % 4000))
	pp_log "starting a throwaway cluster in $PP_WORK..."
	pp_cluster_start <<'CONF' && break
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
synchronous_commit = on
CONF
	[ "$try" = 3 ] && { echo "bench_perf.sh: the cluster did not start" >&2; exit 1; }
	pp_log "the cluster did not start (port $PGPORT taken meanwhile?): retrying on another port"
	pp_cluster_stop
	rm -rf "$PP_PGDATA"
done
# every client statement of this script is bounded (the worker is not a client)
export PGOPTIONS="-c statement_timeout=900s"
pp_psql >/dev/null <<'SQL'
CREATE EXTENSION pinpipe;
CREATE SCHEMA bench;
-- the naive peer's staging tables: regular (logged) tables, to be fair
CREATE TABLE bench.stage_pin (kafka_partition int, kafka_offset bigint, ts bigint, doc jsonb);
CREATE TABLE bench.stage_geo (LIKE bench.stage_pin);
CREATE TABLE bench.stage_user (LIKE bench.stage_pin);
-- the pure write limit's tables: same columns, indexes and constraints, no triggers
CREATE TABLE bench.pure_pin_raw (LIKE pinpipe.pin_raw INCLUDING ALL);
CREATE TABLE bench.pure_geo_raw (LIKE pinpipe.geo_raw INCLUDING ALL);
CREATE TABLE bench.pure_user_raw (LIKE pinpipe.user_raw INCLUDING ALL);
CREATE TABLE bench.pure_pin_clean (LIKE pinpipe.pin_clean INCLUDING ALL);
CREATE TABLE bench.pure_geo_clean (LIKE pinpipe.geo_clean INCLUDING ALL);
CREATE TABLE bench.pure_user_clean (LIKE pinpipe.user_clean INCLUDING ALL);
SQL
for kv in ${SETS[@]+"${SETS[@]}"}; do
	pp_psql -c "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'" >/dev/null
done
[ ${#SETS[@]} = 0 ] || pp_psql -c "SELECT pg_reload_conf()" >/dev/null
TABLES="'pin_raw','geo_raw','user_raw','pin_clean','geo_clean','user_clean'"
if [ "$NO_TRIGGERS" = 1 ]; then
	for t in pin_raw geo_raw user_raw pin_clean geo_clean user_clean; do
		pp_psql -c "ALTER TABLE pinpipe.$t DISABLE TRIGGER USER"
	done
fi
TRIGGERS=$(pp_psql -c "SELECT coalesce(string_agg(format('%s.%s%s', c.relname, t.tgname,
		CASE WHEN t.tgenabled = 'D' THEN ' (disabled)' ELSE '' END), ', ' ORDER BY c.relname, t.tgname), 'none')
	FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	WHERE c.relnamespace = 'pinpipe'::regnamespace AND c.relname IN ($TABLES) AND NOT t.tgisinternal")
BATCH=$(pp_psql -c "SHOW pinpipe.batch_size")
BATCH_TIMEOUT=$(pp_psql -c "SHOW pinpipe.batch_timeout")
PGVERSION_STR=$(pp_psql -c "SELECT version()")
SERVER_SETTINGS=$(pp_psql -c "SELECT string_agg(name || ' = ' || current_setting(name), ', ' ORDER BY ord)
	FROM unnest('{shared_buffers,max_wal_size,checkpoint_timeout,synchronous_commit,fsync,wal_level,full_page_writes,wal_compression}'::text[])
	WITH ORDINALITY AS s(name, ord)")

# A long-lived psql for polling during timed phases (a new connection every
# 0.1 s would compete with the worker for the CPU).
poll_start() {
	coproc POLLPSQL { exec psql -X -At -q 2>/dev/null; }
	POLL_PID=$POLLPSQL_PID
}
# poll_q SQL: one-line answer in Q (empty on error or after 10 s).
poll_q() {
	Q=
	printf '%s;\n' "$1" >&"${POLLPSQL[1]}" || return 0
	IFS= read -r -t 10 Q <&"${POLLPSQL[0]}" || Q=
}
poll_stop() {
	[ -n "${POLL_PID:-}" ] || return 0
	local fd=${POLLPSQL[1]:-}
	[ -n "$fd" ] && eval "exec $fd>&-"
	wait "$POLL_PID" 2>/dev/null || true
	POLL_PID=
}

# Empty every pinpipe table (and the staging tables), then checkpoint, so no
# phase pays for the previous one's dirty pages. The workers must be idle.
reset_tables() {
	pp_psql >/dev/null <<'SQL'
TRUNCATE pinpipe.pin_raw, pinpipe.geo_raw, pinpipe.user_raw, pinpipe.pin_clean, pinpipe.geo_clean,
         pinpipe.user_clean, pinpipe.offsets, pinpipe.dead_letters, pinpipe.offset_gaps,
         bench.stage_pin, bench.stage_geo, bench.stage_user;
CHECKPOINT;
SQL
}

wait_idle() {
	pp_wait_for 60 "SELECT count(*) > 0 AND bool_and(state LIKE 'idle%') FROM pinpipe.status"
}

# configure WORKERS TRACK_COMMIT_TIMESTAMP PREFIX: idle workers, empty tables,
# then a restart (fresh worker processes, so their peak memory is this run's).
configure() {
	pp_psql -c "ALTER SYSTEM SET pinpipe.brokers = ''" -c "SELECT pg_reload_conf()" >/dev/null
	wait_idle
	pp_psql -c "ALTER SYSTEM SET pinpipe.workers = $1" -c "ALTER SYSTEM SET track_commit_timestamp = $2" \
		-c "ALTER SYSTEM SET pinpipe.topic_prefix = '$3'" >/dev/null
	reset_tables
	pp_cluster_ctl restart
	pp_wait_for 60 "SELECT count(*) = $1 FROM pg_stat_activity WHERE backend_type = 'pinpipe worker'"
	wait_idle
}

worker_pids() {
	pp_psql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pinpipe worker' ORDER BY pid"
}

# CPU seconds (user + system) of the given processes.
cpu_seconds() {
	local total=0 line rest
	for pid in "$@"; do
		read -r line <"/proc/$pid/stat" || continue
		rest=${line##*) }
		# shellcheck disable=SC2086
		set -- $rest
		total=$((total + ${12} + ${13}))
	done
	awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# stat_cpu AFTER BEFORE: CPU seconds between two copies of a /proc/PID/stat.
stat_cpu() {
	local a b
	a=$(sed 's/.*) //' "$1" | awk '{ print $12 + $13 }')
	b=$(sed 's/.*) //' "$2" | awk '{ print $12 + $13 }')
	awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (a - b) / hz }'
}

# A field of /proc/PID/status in kB (VmHWM, RssAnon...), without forking.
proc_kb() {
	local k v _
	while read -r k v _; do
		[ "$k" = "$2:" ] && { echo "$v"; return; }
	done 2>/dev/null <"/proc/$1/status"
	echo 0
}

# ---- brokers ----

# Sum of the low (-2) or high (-1) watermarks of PREFIX.TOPIC's partitions:
# prints "sum partitions_answered nonzero_partitions".
watermarks() {
	local broker=$1 topic=$2 parts=$3 which=$4 args=() p
	for ((p = 0; p < parts; p++)); do args+=(-t "$topic:$p:$which"); done
	timeout 60 kcat -b "$broker" -Q "${args[@]}" 2>/dev/null |
		awk '/ offset / { s += $NF; n++; if ($NF != 0) nz++ } END { print s + 0, n + 0, nz + 0 }'
}

broker_stop() {
	local pid=$1 dir=$2
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
	local x pids='' dirs=''
	for x in ${PP_BROKER_PIDS:-}; do [ "$x" = "$pid" ] || pids="$pids $x"; done
	for x in ${PP_BROKER_DIRS:-}; do [ "$x" = "$dir" ] || dirs="$dirs $x"; done
	PP_BROKER_PIDS=$pids PP_BROKER_DIRS=$dirs
}

# ---- the naive peer's SQL: the cleaning rules as plain SQL expressions ----

WS="E' \\t\\n\\r\\x0b\\f'"
# clean_text: NULL for blanks and the source's placeholders, else unchanged
ct() {
	echo "CASE WHEN btrim($1, $WS) IN ('', 'No Title Data Available', 'No description available Story format',
	 'No description available', 'Untitled', 'User Info Error', 'Image src error.',
	 'N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e') THEN NULL ELSE $1 END"
}
ts_expr() {
	echo "CASE WHEN btrim($1, $WS) ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?\$'
	 THEN btrim($1, $WS)::timestamp END"
}
fc_expr() {
	local b="btrim($1, $WS)"
	echo "CASE WHEN $b ~ '^[0-9]+\$' THEN $b::bigint
	 WHEN $b ~ '^[0-9]+(\\.[0-9]+)?[kKmMbB]\$' THEN trunc(left($b, -1)::numeric *
	   CASE lower(right($b, 1)) WHEN 'k' THEN 1000 WHEN 'm' THEN 1000000 ELSE 1000000000 END)::bigint END"
}
uuid_expr() {
	local b="btrim($1, $WS)"
	echo "CASE WHEN $b ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\$'
	   OR $b ~ '^[0-9a-fA-F]{32}\$' THEN $b::uuid END"
}
KTS="timestamptz 'epoch' + ts * interval '1 millisecond'"
write_naive_sql() {
	cat >"$1" <<SQL
WITH r AS (
  INSERT INTO pinpipe.pin_raw ("index", unique_id, title, description, poster_name, follower_count, tag_list,
         is_image_or_video, image_src, downloaded, save_location, category, extra,
         kafka_partition, kafka_offset, kafka_timestamp)
  SELECT coalesce(doc->>'index', doc->>'ind')::int, doc->>'unique_id', doc->>'title', doc->>'description',
         doc->>'poster_name', doc->>'follower_count', doc->>'tag_list', doc->>'is_image_or_video',
         doc->>'image_src', (doc->>'downloaded')::int, doc->>'save_location', doc->>'category',
         nullif(doc - '{index,ind,unique_id,title,description,poster_name,follower_count,tag_list,is_image_or_video,image_src,downloaded,save_location,category}'::text[], '{}'),
         kafka_partition, kafka_offset, $KTS
    FROM bench.stage_pin
  RETURNING *)
INSERT INTO pinpipe.pin_clean
SELECT DISTINCT ON ("index") "index", $(uuid_expr unique_id), $(ct title), $(ct description),
       $(fc_expr follower_count), $(ct poster_name), $(ct tag_list), $(ct is_image_or_video), $(ct image_src),
       $(ct "CASE WHEN save_location LIKE 'Local save in %' THEN substr(save_location, 15) ELSE save_location END"),
       $(ct category)
  FROM r ORDER BY "index", kafka_timestamp DESC, kafka_offset DESC
ON CONFLICT (ind) DO UPDATE SET unique_id = EXCLUDED.unique_id, title = EXCLUDED.title,
   description = EXCLUDED.description, follower_count = EXCLUDED.follower_count,
   poster_name = EXCLUDED.poster_name, tag_list = EXCLUDED.tag_list,
   is_image_or_video = EXCLUDED.is_image_or_video, image_src = EXCLUDED.image_src,
   save_location = EXCLUDED.save_location, category = EXCLUDED.category;

WITH r AS (
  INSERT INTO pinpipe.geo_raw (ind, "timestamp", latitude, longitude, country, extra,
         kafka_partition, kafka_offset, kafka_timestamp)
  SELECT coalesce(doc->>'ind', doc->>'index')::int, doc->>'timestamp', (doc->>'latitude')::float8,
         (doc->>'longitude')::float8, doc->>'country',
         nullif(doc - '{ind,index,timestamp,latitude,longitude,country}'::text[], '{}'),
         kafka_partition, kafka_offset, $KTS
    FROM bench.stage_geo
  RETURNING *)
INSERT INTO pinpipe.geo_clean
SELECT DISTINCT ON (ind) ind, $(ct country),
       CASE WHEN abs(latitude) <= 90 AND abs(longitude) <= 180 THEN ARRAY[latitude, longitude] END,
       $(ts_expr '"timestamp"')
  FROM r ORDER BY ind, kafka_timestamp DESC, kafka_offset DESC
ON CONFLICT (ind) DO UPDATE SET country = EXCLUDED.country, coordinates = EXCLUDED.coordinates,
   "timestamp" = EXCLUDED."timestamp";

WITH r AS (
  INSERT INTO pinpipe.user_raw (ind, first_name, last_name, age, date_joined, extra,
         kafka_partition, kafka_offset, kafka_timestamp)
  SELECT coalesce(doc->>'ind', doc->>'index')::int, doc->>'first_name', doc->>'last_name',
         (doc->>'age')::int, doc->>'date_joined',
         nullif(doc - '{ind,index,first_name,last_name,age,date_joined}'::text[], '{}'),
         kafka_partition, kafka_offset, $KTS
    FROM bench.stage_user
  RETURNING *)
INSERT INTO pinpipe.user_clean
SELECT DISTINCT ON (ind) ind, nullif(concat_ws(' ', $(ct first_name), $(ct last_name)), ''), age,
       $(ts_expr date_joined)
  FROM r ORDER BY ind, kafka_timestamp DESC, kafka_offset DESC
ON CONFLICT (ind) DO UPDATE SET user_name = EXCLUDED.user_name, age = EXCLUDED.age,
   date_joined = EXCLUDED.date_joined;
SQL
}

# ---- checks ----

# check_rows RECORDS MESSAGES WHAT: every message stored once, as a row, no dead letters.
check_rows() {
	local r=$1 m=$2 what=$3 got
	got=$(pp_psql -F ' ' -c "SELECT (SELECT count(*) FROM pinpipe.pin_raw), (SELECT count(*) FROM pinpipe.geo_raw),
	        (SELECT count(*) FROM pinpipe.user_raw), (SELECT count(*) FROM pinpipe.dead_letters),
	        (SELECT count(*) FROM pinpipe.pin_clean), (SELECT count(*) FROM pinpipe.geo_clean),
	        (SELECT count(*) FROM pinpipe.user_clean)")
	# shellcheck disable=SC2086
	set -- $got
	if [ $(($1 + $2 + $3 + $4)) -ne "$m" ] || [ "$4" -ne 0 ] || [ "$1" -ne "$r" ] || [ "$2" -ne "$r" ] ||
		[ "$3" -ne "$r" ] || [ "$5" -ne "$r" ] || [ "$6" -ne "$r" ] || [ "$7" -ne "$r" ]; then
		fail "$what: raw pin/geo/user, dead letters, clean pin/geo/user = $got; expected $r $r $r 0 $r $r $r"
		return
	fi
	echo "  ok: $what: $m messages = $1 + $2 + $3 raw rows + $4 dead letters; $r clean rows per table" >&2
}

check_offsets() {
	local m=$1 what=$2 got
	got=$(pp_psql -c "SELECT coalesce(sum(next_offset), 0) FROM pinpipe.offsets")
	[ "$got" = "$m" ] || fail "$what: stored offsets sum to $got, expected $m"
}

# ---- the three measurements ----

declare -A R_PURE R_PURE_CPU R_PURE_ALL R_PROGRESS R_SIZES LAT_SLOW R_FIRST_ALL R_LIMIT_CPU R_LIMIT R_LIMIT_ALL R_NAIVE R_NAIVE_ALL R_PP R_PP_ALL R_BATCH R_HWM R_ANON R_CPU R_PARTS R_MSGS R_NAIVE_DIFF LAT

median() { printf '%s\n' "$@" | pp_median; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
repeats() { echo "${REPEAT:-3}"; }

# drain_once M PREFIX BROKER WORKERS [PERF_FILE]: the worker(s), freshly
# started, drain the backlog. Sets D_SECS, D_CPU, D_HWM, D_ANON (kB), D_XACTS.
drain_once() {
	local m=$1 prefix=$2 broker=$3 w=$4 perf_file=${5:-} t0 t1 tfirst='' cpu0 cpu1 pids hwm=0 anon=0 v deadline
	local mark=1000000 marks=() tprev
	configure "$w" off "$prefix"
	mapfile -t pids < <(worker_pids)
	[ "${#pids[@]}" = "$w" ] || fail "expected $w worker processes, found ${#pids[@]}"
	cpu0=$(cpu_seconds "${pids[@]}")
	poll_start
	if [ -n "$perf_file" ]; then
		pp_log "  recording a perf profile of worker ${pids[0]} into $perf_file..."
		perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -o "$perf_file" -p "${pids[0]}" \
			>"$PP_WORK/perf.log" 2>&1 &
		PERF_PID=$!
		sleep 2
	fi
	t0=$(now)
	tprev=$t0
	pp_psql -c "ALTER SYSTEM SET pinpipe.brokers = '$broker'" -c "SELECT pg_reload_conf()" >/dev/null
	deadline=$((SECONDS + 60 + m / 2000))
	while :; do
		poll_q "SELECT coalesce(sum(next_offset), 0) FROM pinpipe.offsets"
		[ "$Q" = "$m" ] && break
		[ -z "$tfirst" ] && [ "${Q:-0}" != 0 ] && tfirst=$(now)
		# the rate of each million (reported for backlogs of several millions)
		while [ "${Q:-0}" -ge "$mark" ] && [ "$mark" -le "$m" ]; do
			v=$(now)
			marks+=("$(fmt_rate 1000000 "$(elapsed "$tprev" "$v")")")
			tprev=$v
			mark=$((mark + 1000000))
		done
		for p in "${pids[@]}"; do
			v=$(proc_kb "$p" RssAnon)
			[ "$v" -gt "$anon" ] && anon=$v
		done
		[ $SECONDS -lt $deadline ] || { fail "drain of $m messages at $w workers timed out (offsets sum: $Q)"; break; }
		sleep 0.1
	done
	t1=$(now)
	if [ -n "$PERF_PID" ]; then
		kill -INT "$PERF_PID" 2>/dev/null || true
		wait "$PERF_PID" 2>/dev/null || true
		PERF_PID=
	fi
	cpu1=$(cpu_seconds "${pids[@]}")
	for p in "${pids[@]}"; do
		v=$(proc_kb "$p" VmHWM)
		[ "$v" -gt "$hwm" ] && hwm=$v
		v=$(proc_kb "$p" RssAnon)
		[ "$v" -gt "$anon" ] && anon=$v
	done
	poll_stop
	pp_psql -c "ALTER SYSTEM SET pinpipe.brokers = ''" -c "SELECT pg_reload_conf()" >/dev/null
	wait_idle
	D_SECS=$(elapsed "$t0" "$t1")
	D_FIRST=$(elapsed "$t0" "${tfirst:-$t1}")
	D_CPU=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')
	D_HWM=$hwm
	D_ANON=$anon
	D_MARKS="${marks[*]}"
	D_XACTS=$(pp_psql -c "SELECT count(DISTINCT x) FROM (SELECT xmin::text x FROM pinpipe.pin_raw
	     UNION ALL SELECT xmin::text FROM pinpipe.geo_raw UNION ALL SELECT xmin::text FROM pinpipe.user_raw) s")
	check_rows "$((m / 3))" "$m" "pinpipe, $w worker(s)"
	check_offsets "$m" "pinpipe, $w worker(s)"
	pp_log "  pinpipe, $w worker(s): $m messages in $D_SECS s = $(fmt_rate "$m" "$D_SECS") messages/s" \
		"(first batch stored after $D_FIRST s, worker CPU $D_CPU s, $D_XACTS transactions, VmHWM $((hwm / 1024)) MB, peak RssAnon $((anon / 1024)) MB)"
}

# drain M PREFIX BROKER WORKERS KEY: repeated drains; the median rate in R_PP[KEY].
drain() {
	local m=$1 prefix=$2 broker=$3 w=$4 key=$5 rates=() cpus=() firsts=() hwm=0 anon=0 i
	for ((i = 0; i < $(repeats "$m"); i++)); do
		drain_once "$m" "$prefix" "$broker" "$w"
		rates+=("$(fmt_rate "$m" "$D_SECS")")
		cpus+=("$D_CPU")
		firsts+=("$D_FIRST")
		[ "$D_HWM" -gt "$hwm" ] && hwm=$D_HWM
		[ "$D_ANON" -gt "$anon" ] && anon=$D_ANON
	done
	R_PP[$key]=$(median "${rates[@]}")
	R_PROGRESS[$key]=$D_MARKS
	# the tables as the last drain left them (the next configure empties them)
	R_SIZES[$key]=$(pp_psql -c "SELECT string_agg(format('%s %s', c.relname,
	    pg_size_pretty(pg_total_relation_size(c.oid))), ', ' ORDER BY c.relname) FROM pg_class c
	    WHERE c.relnamespace = 'pinpipe'::regnamespace AND c.relkind = 'r'
	    AND c.relname IN ('pin_raw', 'geo_raw', 'user_raw', 'pin_clean', 'geo_clean', 'user_clean')")
	R_SIZES[$key]+="; analytics caches $(pp_psql -c "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid)))
	    FROM pg_class c WHERE c.relnamespace = 'pinpipe'::regnamespace AND c.relkind = 'r'
	    AND c.relname LIKE 'analytics%'")"
	R_PP_ALL[$key]="${rates[*]}"
	R_CPU[$key]=$(median "${cpus[@]}")
	R_FIRST_ALL[$key]="${firsts[*]}"
	R_HWM[$key]=$((hwm / 1024))
	R_ANON[$key]=$((anon / 1024))
	R_BATCH[$key]="$D_XACTS ($((m / (D_XACTS > 0 ? D_XACTS : 1))))"
}

# backend_cpu_sql FILE: psql lines that copy the session's backend's
# /proc/PID/stat to FILE (its CPU time so far; root runs psql, so it may read
# /proc), for stat_cpu.
backend_cpu_sql() {
	echo "SELECT pg_backend_pid() AS bpid \\gset"
	echo "\\setenv BPID :bpid"
	echo "\\! cat /proc/\$BPID/stat > $1"
}

# export_limit_files RECORDS DIR: the rows pinpipe just stored, as COPY text
# files in batches of BATCH messages (BATCH/3 rows of each table), and the
# clean rows kept as the reference for the naive peer's.
export_limit_files() {
	local r=$1 dir=$2 per=$((BATCH / 3)) nb i s
	mkdir -p "$dir"
	chown "$PP_SERVER_USER" "$dir"
	pp_psql >/dev/null <<SQL
SET client_min_messages = warning;
COPY (SELECT * FROM pinpipe.pin_raw ORDER BY "index") TO '$dir/raw_pin';
COPY (SELECT * FROM pinpipe.geo_raw ORDER BY ind) TO '$dir/raw_geo';
COPY (SELECT * FROM pinpipe.user_raw ORDER BY ind) TO '$dir/raw_user';
COPY (SELECT * FROM pinpipe.pin_clean ORDER BY ind) TO '$dir/clean_pin';
COPY (SELECT * FROM pinpipe.geo_clean ORDER BY ind) TO '$dir/clean_geo';
COPY (SELECT * FROM pinpipe.user_clean ORDER BY ind) TO '$dir/clean_user';
DROP TABLE IF EXISTS bench.ref_pin_clean, bench.ref_geo_clean, bench.ref_user_clean;
CREATE UNLOGGED TABLE bench.ref_pin_clean AS TABLE pinpipe.pin_clean;
CREATE UNLOGGED TABLE bench.ref_geo_clean AS TABLE pinpipe.geo_clean;
CREATE UNLOGGED TABLE bench.ref_user_clean AS TABLE pinpipe.user_clean;
SQL
	for f in raw_pin raw_geo raw_user clean_pin clean_geo clean_user; do
		pp_as_server split -l "$per" -d -a 5 "$dir/$f" "$dir/$f."
		rm -f "$dir/$f"
	done
	nb=$(((r + per - 1) / per))
	{
		backend_cpu_sql "$dir/cpu0"
		for ((i = 0; i < nb; i++)); do
			s=$(printf '%05d' "$i")
			echo "BEGIN;"
			for t in pin geo user; do echo "COPY pinpipe.${t}_raw FROM '$dir/raw_$t.$s';"; done
			for t in pin geo user; do echo "COPY pinpipe.${t}_clean FROM '$dir/clean_$t.$s';"; done
			echo "COMMIT;"
		done
		backend_cpu_sql "$dir/cpu1"
	} >"$dir/load.sql"
	{
		backend_cpu_sql "$dir/pcpu0"
		echo "BEGIN;"
		for t in pin geo user; do
			for ((i = 0; i < nb; i++)); do echo "COPY bench.pure_${t}_raw FROM '$dir/raw_$t.$(printf '%05d' "$i")';"; done
		done
		for t in pin geo user; do
			for ((i = 0; i < nb; i++)); do echo "COPY bench.pure_${t}_clean FROM '$dir/clean_$t.$(printf '%05d' "$i")';"; done
		done
		echo "COMMIT;"
		backend_cpu_sql "$dir/pcpu1"
	} >"$dir/pure.sql"
	LIMIT_BATCHES=$nb
}

# pure M DIR KEY: the pure write limit: COPY the same files in one transaction
# into the LIKE ... INCLUDING ALL tables (no triggers); median rate in R_PURE[KEY].
pure() {
	local m=$1 dir=$2 key=$3 t0 t1 rates=() cpus=() i got
	for ((i = 0; i < $(repeats "$m"); i++)); do
		pp_psql >/dev/null <<'SQL'
TRUNCATE bench.pure_pin_raw, bench.pure_geo_raw, bench.pure_user_raw,
         bench.pure_pin_clean, bench.pure_geo_clean, bench.pure_user_clean;
CHECKPOINT;
SQL
		cat "$dir"/raw_* "$dir"/clean_* >/dev/null
		t0=$(now)
		pp_psql -f "$dir/pure.sql" >/dev/null
		t1=$(now)
		rates+=("$(fmt_rate "$m" "$(elapsed "$t0" "$t1")")")
		cpus+=("$(stat_cpu "$dir/pcpu1" "$dir/pcpu0")")
		got=$(pp_psql -c "SELECT (SELECT count(*) FROM bench.pure_pin_raw) + (SELECT count(*) FROM bench.pure_geo_raw)
			+ (SELECT count(*) FROM bench.pure_user_raw) + (SELECT count(*) FROM bench.pure_pin_clean)
			+ (SELECT count(*) FROM bench.pure_geo_clean) + (SELECT count(*) FROM bench.pure_user_clean)")
		[ "$got" = $((2 * m)) ] || fail "pure limit: $got rows in the six tables, expected $((2 * m))"
		pp_log "  pure limit: $m messages (raw + clean row each) by COPY in one transaction, no triggers:" \
			"$(elapsed "$t0" "$t1") s = ${rates[-1]} messages/s (backend CPU ${cpus[-1]} s)"
	done
	pp_psql -c "TRUNCATE bench.pure_pin_raw, bench.pure_geo_raw, bench.pure_user_raw, bench.pure_pin_clean,
		bench.pure_geo_clean, bench.pure_user_clean" >/dev/null
	R_PURE[$key]=$(median "${rates[@]}")
	R_PURE_CPU[$key]=$(median "${cpus[@]}")
	R_PURE_ALL[$key]="${rates[*]}"
}

# limit M DIR KEY: COPY the files, one transaction per batch; median rate in R_LIMIT[KEY].
limit() {
	local m=$1 dir=$2 key=$3 t0 t1 rates=() cpus=() i
	for ((i = 0; i < $(repeats "$m"); i++)); do
		reset_tables
		cat "$dir"/raw_* "$dir"/clean_* >/dev/null # in the page cache, like the broker's messages in memory
		t0=$(now)
		pp_psql -f "$dir/load.sql" >/dev/null
		t1=$(now)
		rates+=("$(fmt_rate "$m" "$(elapsed "$t0" "$t1")")")
		cpus+=("$(stat_cpu "$dir/cpu1" "$dir/cpu0")")
		check_rows "$((m / 3))" "$m" "limit (COPY)"
		pp_log "  limit: $m messages (raw + clean row each) by COPY in $LIMIT_BATCHES transactions:" \
			"$(elapsed "$t0" "$t1") s = ${rates[-1]} messages/s (backend CPU ${cpus[-1]} s)"
	done
	R_LIMIT[$key]=$(median "${rates[@]}")
	R_LIMIT_CPU[$key]=$(median "${cpus[@]}")
	R_LIMIT_ALL[$key]="${rates[*]}"
}

# naive M PREFIX BROKER KEY
naive() {
	local m=$1 prefix=$2 broker=$3 key=$4 t0 t1 diff rates=() i
	write_naive_sql "$PP_WORK/naive.sql"
	for ((i = 0; i < $(repeats "$m"); i++)); do
		reset_tables
		t0=$(now)
		for t in pin geo user; do
			timeout 900 kcat -b "$broker" -C -t "$prefix.$t" -o beginning -e -q -f '%p\x02%o\x02%T\x02%s\n' |
				pp_psql -c "COPY bench.stage_$t FROM STDIN (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
		done
		pp_psql -1 -f "$PP_WORK/naive.sql" >/dev/null
		t1=$(now)
		rates+=("$(fmt_rate "$m" "$(elapsed "$t0" "$t1")")")
		check_rows "$((m / 3))" "$m" "naive peer"
		pp_log "  naive: $m messages in $(elapsed "$t0" "$t1") s = ${rates[-1]} messages/s"
	done
	R_NAIVE[$key]=$(median "${rates[@]}")
	R_NAIVE_ALL[$key]="${rates[*]}"
	diff=$(pp_psql -c "SELECT (SELECT count(*) FROM ((TABLE pinpipe.pin_clean EXCEPT ALL TABLE bench.ref_pin_clean)
	          UNION ALL (TABLE bench.ref_pin_clean EXCEPT ALL TABLE pinpipe.pin_clean)) d)
	        + (SELECT count(*) FROM ((TABLE pinpipe.geo_clean EXCEPT ALL TABLE bench.ref_geo_clean)
	          UNION ALL (TABLE bench.ref_geo_clean EXCEPT ALL TABLE pinpipe.geo_clean)) d)
	        + (SELECT count(*) FROM ((TABLE pinpipe.user_clean EXCEPT ALL TABLE bench.ref_user_clean)
	          UNION ALL (TABLE bench.ref_user_clean EXCEPT ALL TABLE pinpipe.user_clean)) d)")
	R_NAIVE_DIFF[$key]=$diff
	[ "$diff" = 0 ] && echo "  ok: the naive peer's clean rows equal pinpipe's" >&2 ||
		echo "  note: $diff clean rows of the naive peer differ from pinpipe's (SQL expressions vs C rules)" >&2
}

# latency WORKERS RATE: a fresh broker and freshly started worker(s); as soon
# as they report their partitions assigned, the emulator produces RATE
# messages/s. Every message counts, the first ones after the start included.
latency() {
	local w=$1 rate=$2 prefix=lat$1x$2 high stats sum recs_per_s
	recs_per_s=$(((rate + 2) / 3))
	pp_broker_start "$prefix" --partitions "$LAT_PARTS" --prefix "$prefix"
	local bpid=${PP_BROKER_PID:?} bdir
	bdir=$(dirname "$PP_BROKER_CTL")
	configure "$w" on "$prefix"
	pp_psql -c "ALTER SYSTEM SET pinpipe.brokers = '$PP_BROKER'" -c "SELECT pg_reload_conf()" >/dev/null
	pp_wait_for 60 "SELECT coalesce(sum(partitions), 0) = 3 * $LAT_PARTS FROM pinpipe.status" ||
		echo "  note: the workers did not report all $((3 * LAT_PARTS)) partitions assigned" >&2
	pp_log "  emulator at $recs_per_s records/s ($((recs_per_s * 3)) messages/s) for $LAT_SECS s, $w worker(s)..."
	timeout $((LAT_SECS + 60)) "$PP_EMULATE_BIN" --brokers "$PP_BROKER" --prefix "$prefix" --data data \
		--synthetic --seed 2 --start-ind 10000000 --rate "$recs_per_s" --duration "$LAT_SECS" --quiet ||
		fail "latency, $w worker(s): the emulator failed"
	high=0
	for t in pin geo user; do
		read -r sum _ < <(watermarks "$PP_BROKER" "$prefix.$t" "$LAT_PARTS" -1)
		high=$((high + sum))
	done
	pp_wait_for 120 "SELECT coalesce(sum(next_offset), 0) = $high FROM pinpipe.offsets" ||
		fail "latency, $w worker(s): not every message was consumed"
	stats=$(pp_psql -F ' ' <<'SQL'
WITH l AS (
  SELECT extract(epoch FROM pg_xact_commit_timestamp(c.xmin) - r.kafka_timestamp) * 1000 AS ms, c.xmin::text x
    FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index"
  UNION ALL
  SELECT extract(epoch FROM pg_xact_commit_timestamp(c.xmin) - r.kafka_timestamp) * 1000, c.xmin::text
    FROM pinpipe.geo_raw r JOIN pinpipe.geo_clean c USING (ind)
  UNION ALL
  SELECT extract(epoch FROM pg_xact_commit_timestamp(c.xmin) - r.kafka_timestamp) * 1000, c.xmin::text
    FROM pinpipe.user_raw r JOIN pinpipe.user_clean c USING (ind))
SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1), round(max(ms)::numeric, 1),
       count(DISTINCT x), count(*) FILTER (WHERE ms IS NULL)
  FROM l
SQL
	)
	# shellcheck disable=SC2086
	set -- $stats
	[ "$1" = "$high" ] || fail "latency, $w worker(s): $1 clean rows joined, $high messages produced"
	[ "$6" = 0 ] || fail "latency, $w worker(s): $6 rows without a commit timestamp"
	check_rows "$((high / 3))" "$high" "latency run, $w worker(s)"
	LAT[$w,$rate]="$1 $2 $3 $4 $5"
	pp_log "  latency at $rate messages/s, $w worker(s): $1 messages, p50 $2 ms, p99 $3 ms, max $4 ms ($5 transactions)"
	# when the slow messages were produced: the seconds of the run with messages over 250 ms
	LAT_SLOW[$w,$rate]=$(pp_psql <<'SQL'
WITH l AS (
  SELECT r.kafka_timestamp AS ts, extract(epoch FROM pg_xact_commit_timestamp(c.xmin) - r.kafka_timestamp) * 1000 AS ms
    FROM pinpipe.pin_raw r JOIN pinpipe.pin_clean c ON c.ind = r."index"
  UNION ALL
  SELECT r.kafka_timestamp, extract(epoch FROM pg_xact_commit_timestamp(c.xmin) - r.kafka_timestamp) * 1000
    FROM pinpipe.geo_raw r JOIN pinpipe.geo_clean c USING (ind)
  UNION ALL
  SELECT r.kafka_timestamp, extract(epoch FROM pg_xact_commit_timestamp(c.xmin) - r.kafka_timestamp) * 1000
    FROM pinpipe.user_raw r JOIN pinpipe.user_clean c USING (ind)),
s AS (SELECT floor(extract(epoch FROM ts - min(ts) OVER ()))::int AS sec, ms FROM l)
SELECT coalesce(string_agg(format('%ss: %s over 250 ms, max %s ms', sec, n, mx), '; ' ORDER BY sec), 'none')
  FROM (SELECT sec, count(*) FILTER (WHERE ms > 250) n, round(max(ms)::numeric) mx FROM s GROUP BY sec) x
 WHERE n > 0
SQL
	)
	pp_psql -c "ALTER SYSTEM SET pinpipe.brokers = ''" -c "SELECT pg_reload_conf()" >/dev/null
	wait_idle
	broker_stop "$bpid" "$bdir"
}

# ---- the run ----

read -r -a SIZE_LIST <<<"$SIZES"
read -r -a WORKER_LIST <<<"$WORKER_COUNTS"
MAX_N=0
for n in "${SIZE_LIST[@]}"; do [ "$n" -gt "$MAX_N" ] && MAX_N=$n; done
PROFILE_RATE=

for n in "${SIZE_LIST[@]}"; do
	recs=$(((n + 2) / 3))
	m=$((recs * 3))
	d=$PP_WORK/n$n
	mkdir -p "$d"
	pp_log "N = $n: generating $recs synthetic records ($m messages, --seed 1)..."
	"$PP_EMULATE_BIN" --dry-run --synthetic --seed 1 --count "$recs" --data data --quiet >"$d/messages.tsv"
	awk -F'\t' -v d="$d" '{ split($1, t, "."); print $2 "\t" $3 > (d "/" t[2] ".kv") }' "$d/messages.tsv"
	rm -f "$d/messages.tsv"
	# The broker keeps about 5 MB per partition: the pin topic (the largest
	# messages) gets 3 times what its bytes need, at least 48 partitions.
	pin_bytes=$(awk '{ b += length($0) + 80 } END { print b }' "$d/pin.kv")
	parts=$(awk -v b="$pin_bytes" 'BEGIN { p = int(b * 3 / (5 * 1048576)) + 1; p = int((p + 15) / 16) * 16;
		print (p < 48 ? 48 : p) }')
	prefix=n$n
	pp_broker_start "$prefix" --partitions "$parts" --prefix "$prefix"
	bpid=$PP_BROKER_PID
	bdir=$(dirname "$PP_BROKER_CTL")
	broker=$PP_BROKER
	pp_log "  loading the backlog into the embedded broker ($parts partitions per topic, $((pin_bytes / 1048576)) MB of pin messages)..."
	for t in pin geo user; do
		timeout 600 kcat -P -b "$broker" -t "$prefix.$t" -K$'\t' -X queue.buffering.max.messages=1000000 \
			<"$d/$t.kv"
	done
	for t in pin geo user; do
		read -r sum answered _ < <(watermarks "$broker" "$prefix.$t" "$parts" -2)
		if [ "$answered" != "$parts" ] || [ "$sum" != 0 ]; then
			echo "the broker trimmed $prefix.$t (low watermarks sum $sum over $answered partitions): use more partitions" >&2
			exit 1
		fi
		read -r sum _ < <(watermarks "$broker" "$prefix.$t" "$parts" -1)
		if [ "$sum" != "$recs" ]; then
			echo "$prefix.$t holds $sum messages, expected $recs" >&2
			exit 1
		fi
	done
	echo "  ok: the broker holds all $m messages (low watermarks 0, $recs per topic)" >&2
	rm -f "$d"/*.kv

	for w in "${WORKER_LIST[@]}"; do
		key="$n,$w"
		R_MSGS[$key]=$m
		R_PARTS[$key]=$parts
		pp_log "N = $n, pinpipe with $w worker(s)..."
		drain "$m" "$prefix" "$broker" "$w" "$key"
		if [ "$w" = "${WORKER_LIST[0]}" ]; then
			pp_log "N = $n, limit (COPY FROM files)..."
			export_limit_files "$recs" "$d/limit"
			limit "$m" "$d/limit" "$n"
			pp_log "N = $n, pure write limit (COPY FROM files, one transaction, no triggers)..."
			pure "$m" "$d/limit" "$n"
			rm -rf "$d/limit"
			pp_log "N = $n, naive peer (kcat | psql COPY, SQL cleaning)..."
			naive "$m" "$prefix" "$broker" "$n"
		fi
		if [ -n "$PROFILE" ] && [ "$n" = "$MAX_N" ] && [ "$w" = "${WORKER_LIST[0]}" ]; then
			pp_log "N = $n, pinpipe with $w worker(s), profiled (not counted)..."
			drain_once "$m" "$prefix" "$broker" "$w" "$PROFILE"
			PROFILE_RATE=$(fmt_rate "$m" "$D_SECS")
		fi
	done
	broker_stop "$bpid" "$bdir"
	rm -rf "$d"
done

read -r -a LAT_RATE_LIST <<<"$LAT_RATES"
if [ "$LAT_SECS" != 0 ]; then
	for w in "${WORKER_LIST[@]}"; do
		for rate in "${LAT_RATE_LIST[@]}"; do
			pp_log "latency at $rate messages/s, $w worker(s)..."
			latency "$w" "$rate"
		done
	done
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
SO_END=$(so_sum)

# ---- the report ----

pp_bold() { printf '%s\n' "$*"; }
echo
pp_bold "pinpipe benchmark (issues 7 and 16)$([ "$QUICK" = 1 ] && echo ', --quick'), $(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - T_BEGIN)) s"
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM," \
	"load average $LOAD_BEGIN at start, $LOAD_END at end"
echo "server:  $PGVERSION_STR"
echo "pinpipe: commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null ||
	echo " + uncommitted changes in $(git diff --name-only HEAD -- src | paste -sd' ')"), pinpipe.so md5 $SO_BEGIN$([ "$SO_END" = "$SO_BEGIN" ] ||
	echo " (WARNING: reinstalled during the run, now $SO_END: the figures may mix builds)")"
echo "settings, the same for all three: $SERVER_SETTINGS"
echo "         (synchronous_commit = on is the default); pinpipe.batch_size = $BATCH, pinpipe.batch_timeout = $BATCH_TIMEOUT$(
	[ ${#SETS[@]} = 0 ] || echo "; set for this run: ${SETS[*]}")"
echo "data:    synthetic emulator records (--seed 1), each a pin, a geo and a user message (1:1:1), keyed by ind"
echo "triggers on the six tables (fire alike for all three unless disabled): $TRIGGERS"
echo
printf '%9s | %5s | %7s | %14s | %16s | %13s | %11s | %12s | %13s | %13s | %16s | %12s | %8s | %10s\n' \
	messages parts workers "pure msg/s" "COPY limit msg/s" "pinpipe msg/s" "naive msg/s" "pinpipe/pure" "pinpipe/limit" \
	"pinpipe/naive" "xacts (msg/xact)" "worker CPU s" "VmHWM MB" "RssAnon MB"
for n in "${SIZE_LIST[@]}"; do
	for w in "${WORKER_LIST[@]}"; do
		key="$n,$w"
		awk -v m="${R_MSGS[$key]}" -v parts="${R_PARTS[$key]}" -v w="$w" -v l="${R_LIMIT[$n]}" -v p="${R_PP[$key]}" \
			-v pu="${R_PURE[$n]}" -v nv="${R_NAIVE[$n]}" -v b="${R_BATCH[$key]}" -v c="${R_CPU[$key]}" -v h="${R_HWM[$key]}" \
			-v a="${R_ANON[$key]}" 'BEGIN {
			printf "%9d | %5d | %7d | %14d | %16d | %13d | %11d | %12.2f | %13.2f | %13.2f | %16s | %12s | %8d | %10d\n",
				m, parts, w, pu, l, p, nv, p / pu, p / l, p / nv, b, c, h, a }'
	done
done
echo
echo "pure:    the database's pure write limit: the same raw and clean rows COPY'd FROM the same files in ONE"
echo "         transaction into tables created LIKE pinpipe.<table> INCLUDING ALL (indexes, constraints; no"
echo "         triggers, so no analytics caches, no offsets). The target is against this figure."
echo "limit:   the same raw and clean rows (as pinpipe stored them) COPY'd FROM text files into the same tables"
echo "         with the same primary keys, one transaction per $BATCH messages ($((BATCH / 3)) rows of each of the"
echo "         6 tables), by one session; a message = its raw row + its clean row; no offsets table. Measured once"
echo "         per N (the median of its runs) and shown on each row of that N, as is the naive peer."
echo "pinpipe: from the reload that sets pinpipe.brokers to sum(pinpipe.offsets.next_offset) = N (polled every"
echo "         0.1 s); backlog pre-loaded (low watermarks checked 0); exactly-once offsets in the same transaction."
echo "         xacts = distinct xmin of the raw rows (one per batch). worker CPU = user+system time of the worker(s)."
echo "naive:   per topic kcat -C -o beginning -e | psql -c \"COPY stage FROM STDIN\" into a logged jsonb staging"
echo "         table, then one transaction: INSERT INTO raw SELECT doc->>... RETURNING, INSERT INTO clean SELECT"
echo "         DISTINCT ON (ind) <SQL cleaning expressions> ON CONFLICT (ind) DO UPDATE; timed end to end."
for n in "${SIZE_LIST[@]}"; do
	[ "${R_NAIVE_DIFF[$n]:-0}" = 0 ] && echo "         N = $n: the naive clean rows equal pinpipe's, row for row." ||
		echo "         N = $n: ${R_NAIVE_DIFF[$n]} naive clean rows differ from pinpipe's."
done
echo "runs:    rates in messages/s of each run (the table shows the median):"
for n in "${SIZE_LIST[@]}"; do
	echo "         N = $n: pure ${R_PURE_ALL[$n]}; limit ${R_LIMIT_ALL[$n]}; naive ${R_NAIVE_ALL[$n]};$(for w in "${WORKER_LIST[@]}"; do
		printf ' pinpipe %s worker(s) %s;' "$w" "${R_PP_ALL[$n,$w]}"; done)"
	echo "         N = $n: seconds from the reload to the first stored batch (included above):$(for w in "${WORKER_LIST[@]}"; do
		printf ' %s worker(s) %s;' "$w" "${R_FIRST_ALL[$n,$w]}"; done)"
	echo "         N = $n: CPU per message (less sensitive to other load than the rates): limit (COPY backend)$(
		awk -v c="${R_LIMIT_CPU[$n]}" -v m="${R_MSGS[$n,${WORKER_LIST[0]}]}" 'BEGIN { printf " %.1f us", c * 1e6 / m }'); pure (COPY backend)$(
		awk -v c="${R_PURE_CPU[$n]}" -v m="${R_MSGS[$n,${WORKER_LIST[0]}]}" 'BEGIN { printf " %.1f us", c * 1e6 / m }');$(
		for w in "${WORKER_LIST[@]}"; do awk -v w="$w" -v c="${R_CPU[$n,$w]}" -v m="${R_MSGS[$n,$w]}" \
			'BEGIN { printf " pinpipe %d worker(s) %.1f us;", w, c * 1e6 / m }'; done)"
done
echo "memory:  VmHWM = the worker backend's peak resident set, which counts the shared_buffers pages it touched;"
echo "         RssAnon = its peak private (heap) memory, sampled every 0.1 s. Largest worker and run shown."
echo
if [ "$LAT_SECS" != 0 ]; then
	for w in "${WORKER_LIST[@]}"; do
		for rate in "${LAT_RATE_LIST[@]}"; do
			# shellcheck disable=SC2086
			set -- ${LAT[$w,$rate]}
			printf 'latency at %d messages/s for %d s, %d worker(s): %d messages, p50 %s ms, p99 %s ms, max %s ms (%d transactions, %.0f msg/xact)\n' \
				"$rate" "$LAT_SECS" "$w" "$1" "$2" "$3" "$4" "$5" "$(awk -v a="$1" -v b="$5" 'BEGIN { print a / (b > 0 ? b : 1) }')"
			echo "         messages over 250 ms, by second of the run (produce time): ${LAT_SLOW[$w,$rate]}"
		done
	done
	echo "         the emulator starts as soon as the freshly started worker(s) report their partitions assigned;"
	echo "         every message counts, the first ones after the start included."
	echo "         latency = commit timestamp of the transaction that wrote the clean row (track_commit_timestamp = on,"
	echo "         latency runs only) - the message's Kafka timestamp (set by the producer, librdkafka, at produce time)."
	echo "         The commit timestamp is taken just before the commit record is flushed: visibility follows it by one fsync."
else
	echo "latency: not measured (--latency-seconds 0)"
fi
echo
echo "targets (issue 16):"
W1=${WORKER_LIST[0]}
for n in "${SIZE_LIST[@]}"; do
	awk -v n="$n" -v w="$W1" -v pu="${R_PURE[$n]}" -v p="${R_PP[$n,$W1]}" -v nv="${R_NAIVE[$n]}" 'BEGIN {
		printf "  N = %d, %d worker(s): pinpipe/pure %.3f (>= 0.7: %s), pinpipe/naive %.2f (>= 3: %s)\n",
			n, w, p / pu, (p / pu >= 0.7 ? "met" : "NOT met"), p / nv, (p / nv >= 3 ? "met" : "NOT met") }'
	for w in "${WORKER_LIST[@]}"; do
		[ "$w" = "$W1" ] && continue
		awk -v n="$n" -v w="$w" -v w1="$W1" -v m="${R_MSGS[$n,$w]}" -v c="${R_CPU[$n,$w]}" -v c1="${R_CPU[$n,$W1]}" 'BEGIN {
			e = m / c; e1 = m / c1
			printf "  N = %d: messages per worker CPU-second, %d workers %.0f vs %d worker(s) %.0f: ratio %.3f (within 10%%: %s)\n",
				n, w, e, w1, e1, e / e1, (e / e1 >= 0.9 ? "met" : "NOT met") }'
	done
	awk -v n="$n" -v w="$W1" -v h="${R_HWM[$n,$W1]}" -v a="${R_ANON[$n,$W1]}" 'BEGIN {
		printf "  N = %d, %d worker(s): private RSS (RssAnon) %d MB (< 200: %s); VmHWM %d MB incl. shared buffers touched\n",
			n, w, a, (a < 200 ? "met" : "NOT met"), h }'
done
BASE_N=
for n in "${SIZE_LIST[@]}"; do [ "$n" = 1000000 ] && BASE_N=$n; done
[ -z "$BASE_N" ] && BASE_N=${SIZE_LIST[0]}
for n in "${SIZE_LIST[@]}"; do
	[ "$n" -gt "$BASE_N" ] || continue
	awk -v n="$n" -v b="$BASE_N" -v w="$W1" -v p="${R_PP[$n,$W1]}" -v pb="${R_PP[$BASE_N,$W1]}" 'BEGIN {
		printf "  rate at N = %d vs N = %d, %d worker(s): %.3f (within 20%%: %s)\n", n, b, w, p / pb, (p / pb >= 0.8 ? "met" : "NOT met") }'
done
if [ "$LAT_SECS" != 0 ]; then
	for w in "${WORKER_LIST[@]}"; do
		for rate in "${LAT_RATE_LIST[@]}"; do
			# shellcheck disable=SC2086
			set -- ${LAT[$w,$rate]}
			lim=250
			[ "$rate" -le 5000 ] && lim=100
			awk -v w="$w" -v r="$rate" -v p="$3" -v lim="$lim" 'BEGIN {
				printf "  latency at %d messages/s, %d worker(s): p99 %s ms (< %d: %s)\n", r, w, p, lim, (p < lim ? "met" : "NOT met") }'
		done
	done
fi
for n in "${SIZE_LIST[@]}"; do
	[ -n "${R_PROGRESS[$n,$W1]}" ] && echo "progress, N = $n, $W1 worker(s), first run: messages/s of each million: ${R_PROGRESS[$n,$W1]}"
	echo "sizes after N = $n, $W1 worker(s): ${R_SIZES[$n,$W1]}"
done

if [ -n "$PROFILE" ] && [ -s "$PROFILE" ]; then
	echo
	echo "perf profile of the worker: $PROFILE (N = $MAX_N, ${WORKER_LIST[0]} worker(s), an extra drain at $PROFILE_RATE messages/s under perf)"
	echo "top functions by inclusive time (children):"
	{ timeout 600 perf report -i "$PROFILE" --stdio --children --no-call-graph --percent-limit 2 --sort symbol 2>/dev/null ||
		true; } | awk '!/^#/ && NF && n++ < 60'
	chmod 644 "$PROFILE"
fi
[ "$FAILED" = 0 ] || { echo "$FAILED correctness check(s) FAILED" >&2; exit 1; }
