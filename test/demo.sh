#!/usr/bin/env bash
# test/demo.sh: the whole pipeline in one command, on a fresh Debian 12 machine.
#
# Installs what it needs, builds pinpipe, starts the embedded Kafka broker and a
# throwaway PostgreSQL cluster with the worker preloaded, posts records with the
# emulator at a visible rate while showing the ingestion (messages, lag, dead
# letters), then prints the cleaned tables and the analytics answers.
#
#   bash test/demo.sh            about 3,000 records at 300 a second
#   bash test/demo.sh --short    300 records (used by CI)
#   bash test/demo.sh --keep     leave the broker and the cluster running
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"

COUNT=3000
RATE=300
KEEP=false
for arg in "$@"; do
	case "$arg" in
	--short) COUNT=300 RATE=150 ;;
	--keep) KEEP=true ;;
	-h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

say "starting a throwaway PostgreSQL cluster with the worker preloaded"
PP_WORK=$(mktemp -d "${TMPDIR:-/tmp}/pinpipe-demo.XXXXXX")
cleanup() {
	if [ "$KEEP" = true ]; then
		echo
		echo "Left running. Connect with: psql -h $PGHOST -p $PGPORT -U postgres"
		echo "Stop with: kill $PP_BROKER_PID; runuser -u $PP_SERVER_USER -- $PP_BIN/pg_ctl -D $PP_PGDATA stop"
	else
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
echo "cluster on port $PGPORT, data in $PP_PGDATA"

say "posting $COUNT records (pin, geo and user: $((COUNT * 3)) messages) at $RATE records/s"
"$PP_EMULATE_BIN" --brokers "$PP_BROKER" --prefix pinterest --count "$COUNT" --rate "$RATE" --seed 2024 \
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
