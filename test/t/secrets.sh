#!/usr/bin/env bash
# Secrets in pinpipe.kafka_config never appear in the server log (PostgreSQL
# logs changed and refused setting values, and statements), in pg_settings
# for non-superusers, in pinpipe.status, or in errors.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
trap 'pp_brokers_stop; pp_set pinpipe.kafka_config ""; pp_psql -d postgres -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null' EXIT
marker="S3cr3t-$RANDOM$RANDOM"

pp_reset_pinpipe
pp_broker_start sec --partitions 1 --prefix sec || exit 1
pp_psql -d postgres -c "ALTER SYSTEM SET log_statement = 'all'" >/dev/null
# a good configuration with a password, applied by reload while consuming
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix sec \
	pinpipe.kafka_config "client.rack=r1,sasl.username=pinpipe,sasl.password=$marker"
# a refused one (an unknown property next to the password)
out=$(psql -X -d postgres -c "ALTER SYSTEM SET pinpipe.kafka_config = 'sasl.password=$marker,no.such.property=1'" 2>&1)
case "$out" in *"$marker"*) echo "  FAILED: the error shows the secret: $out"; PP_FAILED=$((PP_FAILED + 1)) ;;
*"no.such.property"*) echo "  ok: the refused value's error names the property, not the secret" ;;
*) echo "  FAILED: unexpected answer: $out"; PP_FAILED=$((PP_FAILED + 1)) ;; esac
out=$(psql -X -d postgres -c "ALTER SYSTEM SET pinpipe.kafka_config = 'sasl.mechanism=NOPE,sasl.password=$marker'" 2>&1)
case "$out" in *"$marker"*) echo "  FAILED: the error shows the secret: $out"; PP_FAILED=$((PP_FAILED + 1)) ;;
*) echo "  ok: a refused value is not echoed" ;; esac
printf '1\t{"index": 1}\n' | kcat -b "$PP_BROKER" -P -t sec.pin -K $'\t'
pp_wait_for 30 "SELECT count(*) = 1 FROM pinpipe.pin_raw" || PP_FAILED=$((PP_FAILED + 1))
pp_check "the worker consumes with the configuration" "SELECT count(*) = 1 FROM pinpipe.pin_raw"

pp_psql -d postgres -c "CREATE ROLE pinpipe_secret_reader LOGIN" -c "GRANT pinpipe_admin TO pinpipe_secret_reader" >/dev/null
out=$(psql -X -At -d postgres -U pinpipe_secret_reader -c "SELECT name, setting FROM pg_settings" \
	-c "SELECT s::text FROM pinpipe.status s" -c "SHOW pinpipe.kafka_config" 2>&1)
! grep -q -- "$marker" <<<"$out" && grep -q "pinpipe.brokers" <<<"$out" && echo "  ok: not in pg_settings or pinpipe.status for a pinpipe_admin member" ||
	{ echo "  FAILED: visible to a non-superuser: $out"; PP_FAILED=$((PP_FAILED + 1)); }
pp_psql -d postgres -c "DROP ROLE pinpipe_secret_reader" >/dev/null
sleep 1
if grep -q -- "$marker" "$PP_WORK/server.log"; then
	echo "  FAILED: the secret is in the server log:"
	grep -n -- "$marker" "$PP_WORK/server.log" | head -5
	PP_FAILED=$((PP_FAILED + 1))
else
	echo "  ok: the secret is not in the server log ($(grep -c 'pinpipe.kafka_config' "$PP_WORK/server.log") lines mention the setting)"
fi
exit $((PP_FAILED > 0))
