#!/usr/bin/env bash
# test/demo.sh: the whole pipeline in one command, on a fresh Debian 12 machine.
#
# Installs what it needs, builds pinpipe, starts the embedded Kafka broker and a
# throwaway PostgreSQL cluster with the worker preloaded, posts records with the
# emulator at a visible rate while showing the ingestion (messages, lag, dead
# letters) and starts the dashboard (pinpipe-dashboard; its URL is printed),
# then prints the cleaned tables and the analytics answers.
#
#   bash test/demo.sh            about 3,000 records at 300 a second
#   bash test/demo.sh --short    300 records (used by CI)
#   bash test/demo.sh --keep     leave the broker, the cluster and the dashboard running
#   bash test/demo.sh --rest     post over HTTP, as the original producers do:
#                                emulator -> pinpipe-rest (REST Proxy v2 shape,
#                                under the stage /dev) -> Kafka -> worker
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"

COUNT=3000
RATE=300
KEEP=false
REST=false
for arg in "$@"; do
	case "$arg" in
	--short) COUNT=300 RATE=150 ;;
	--keep) KEEP=true ;;
	--rest) REST=true ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown option $arg" >&2; exit 2 ;;
	esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Run by test/run.sh (test/t/demo.pl, as the server user): pinpipe is built
# and installed in its private server tree already; use that one.
if [ -n "${PP_PRIVATE_ROOT:-}" ] && [ -d "$PP_PRIVATE_ROOT" ] &&
	[ -f "$("$PP_BIN/pg_config" --pkglibdir)/pinpipe.so" ] && [ -x "$PP_BROKER_BIN" ] && [ -x "$PP_EMULATE_BIN" ]; then
	say "using pinpipe as built and installed in $PP_PRIVATE_ROOT"
else
	say "installing packages and building pinpipe"
	pp_install_deps
	pp_build
fi

say "starting the embedded Kafka broker (pinpipe-broker)"
pp_broker_start demo --partitions 6 --prefix pinterest
echo "bootstrap address: $PP_BROKER"

TARGET=(--brokers "$PP_BROKER")
if [ "$REST" = true ]; then
	say "starting the HTTP front door (pinpipe-rest) in front of the broker"
	PP_REST_LOG=$(mktemp "${TMPDIR:-/tmp}/pinpipe-rest-demo.XXXXXX")
	src/bin/pinpipe-rest --brokers "$PP_BROKER" --listen 127.0.0.1:0 --base-path /dev \
		--stream-prefix pinterest --key-field index,ind --quiet >"$PP_REST_LOG" 2>&1 &
	PP_REST_PID=$!
	for _ in $(seq 100); do grep -q '^listening on' "$PP_REST_LOG" && break; sleep 0.1; done
	REST_URL=$(sed -n 's/^listening on //p' "$PP_REST_LOG")
	[ -n "$REST_URL" ] || { cat "$PP_REST_LOG" >&2; exit 1; }
	echo "invoke URL: $REST_URL/dev (the producers post to $REST_URL/dev/topics/pinterest.pin ...)"
	TARGET=(--rest "$REST_URL/dev")
fi

say "starting a throwaway PostgreSQL cluster with the worker preloaded"
PP_WORK=$(mktemp -d "${TMPDIR:-/tmp}/pinpipe-demo.XXXXXX")
DASH_PID=
cleanup() {
	if [ "$KEEP" = true ]; then
		echo
		echo "Left running. Connect with: psql -h $PGHOST -p $PGPORT -U postgres"
		[ -n "$DASH_PID" ] && echo "The dashboard: ${DASH_URL:-}"
		echo "Stop with: kill $PP_BROKER_PID ${DASH_PID}; runuser -u $PP_SERVER_USER -- $PP_BIN/pg_ctl -D $PP_PGDATA stop"
	else
		[ -n "$DASH_PID" ] && kill "$DASH_PID" 2>/dev/null
		[ -n "${PP_REST_PID:-}" ] && kill "$PP_REST_PID" 2>/dev/null && wait "$PP_REST_PID" 2>/dev/null
		[ -n "${PP_REST_LOG:-}" ] && rm -f "$PP_REST_LOG"
		pp_brokers_stop
		pp_cluster_stop
		rm -rf "$PP_WORK"
	fi
}
trap cleanup EXIT
pp_cluster_start <<CONF
pinpipe.brokers = '$PP_BROKER'
pinpipe.topic_prefix = 'pinterest'
CONF
pp_psql -c "CREATE EXTENSION pinpipe"

say "starting the dashboard (pinpipe-dashboard, as a role with only pinpipe_reader)"
pp_psql -c "CREATE ROLE dashboard LOGIN" -c "GRANT pinpipe_reader TO dashboard"
# on port 8050 (PP_DASHBOARD_PORT), or any free port when that one is taken
for port in "${PP_DASHBOARD_PORT:-8050}" 0; do
	"$PP_TOP/src/bin/pinpipe-dashboard" --db "host=$PGHOST port=$PGPORT dbname=postgres user=dashboard" \
		--listen "127.0.0.1:$port" --quiet >"$PP_WORK/dashboard.out" 2>"$PP_WORK/dashboard.log" &
	DASH_PID=$!
	for _ in $(seq 50); do [ -s "$PP_WORK/dashboard.out" ] || ! kill -0 $DASH_PID 2>/dev/null && break; sleep 0.1; done
	DASH_URL=$(sed -n 's/^dashboard at //p' "$PP_WORK/dashboard.out")
	[ -n "$DASH_URL" ] && break
done
if [ -n "$DASH_URL" ]; then
	echo "open $DASH_URL (it updates itself while the records arrive)"
else
	echo "the dashboard did not start:"; cat "$PP_WORK/dashboard.log"; DASH_PID=
fi
echo "cluster on port $PGPORT, data in $PP_PGDATA"

if [ "$REST" = true ]; then
	say "posting $COUNT records (pin, geo and user: $((COUNT * 3)) HTTP requests, one at a time as the original producer) at up to $RATE records/s"
else
	say "posting $COUNT records (pin, geo and user: $((COUNT * 3)) messages) at $RATE records/s"
fi
"$PP_EMULATE_BIN" "${TARGET[@]}" --prefix pinterest --count "$COUNT" --rate "$RATE" --seed 2024 \
	--data data --quiet 2>"$PP_WORK/emulate.log" &
emu=$!
printf '%8s  %10s  %10s  %8s  %12s\n' seconds messages rows lag dead_letters
start=$SECONDS
while :; do
	done_emu=false
	kill -0 $emu 2>/dev/null || done_emu=true
	line=$(pp_psql -F ' ' -c "SELECT sum(messages), sum(messages - dead_letters), coalesce(sum(lag), 0), sum(dead_letters) FROM pinpipe.status")
	read -r msgs rows lag dead <<<"$line"
	printf '%8d  %10s  %10s  %8s  %12s\n' $((SECONDS - start)) "$msgs" "$rows" "$lag" "$dead"
	if $done_emu && [ "$msgs" -ge $((COUNT * 3)) ] && [ "$lag" = 0 ]; then break; fi
	[ $((SECONDS - start)) -lt 300 ] || { echo "the demo did not finish in 5 minutes" >&2; exit 1; }
	sleep 1
done
wait $emu
tail -1 "$PP_WORK/emulate.log"

say "cleaned tables (one row per ind; the emulator posts rows with replacement, so duplicates collapse)"
pp_psql -P pager=off -A -F ' | ' -c "SELECT 'pin_raw' AS t, count(*) FROM pinpipe.pin_raw UNION ALL SELECT 'pin_clean', count(*) FROM pinpipe.pin_clean
  UNION ALL SELECT 'geo_raw', count(*) FROM pinpipe.geo_raw UNION ALL SELECT 'geo_clean', count(*) FROM pinpipe.geo_clean
  UNION ALL SELECT 'user_raw', count(*) FROM pinpipe.user_raw UNION ALL SELECT 'user_clean', count(*) FROM pinpipe.user_clean
  UNION ALL SELECT 'dead_letters', count(*) FROM pinpipe.dead_letters"
psql -X -P pager=off -c "SELECT ind, left(title, 40) AS title, follower_count, poster_name, save_location, category FROM pinpipe.pin_clean ORDER BY ind LIMIT 5"
psql -X -P pager=off -c "SELECT * FROM pinpipe.geo_clean ORDER BY ind LIMIT 3" -c "SELECT * FROM pinpipe.user_clean ORDER BY ind LIMIT 3"

if [ "$(pp_psql -c "SELECT count(*) FROM pg_proc WHERE proname = 'popular_category_by_country' AND pronamespace = 'pinpipe'::regnamespace")" != 0 ]; then
	say "the nine analytics answers"
	for q in "popular_category_by_country()" "category_count_by_year()" "most_followed_by_country()" \
		"most_followed_country()" "popular_category_by_age_group()" "median_followers_by_age_group()" \
		"users_joined_by_year()" "median_followers_by_join_year()" "median_followers_by_age_group_and_join_year()"; do
		echo "-- pinpipe.$q"
		psql -X -P pager=off -c "SELECT * FROM pinpipe.$q LIMIT 15"
	done
fi
say "done"
