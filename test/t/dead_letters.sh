#!/usr/bin/env bash
# A batch with bad messages mixed in: the good rows all land, each bad one
# becomes a dead letter with its precise error, and rows + dead letters =
# messages consumed. A user trigger that refuses one row costs only that row.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
trap pp_brokers_stop EXIT

pp_reset_pinpipe
pp_broker_start bad --partitions 1 --prefix bad || exit 1

# a user trigger on pin_clean that refuses ind 13
pp_psql -d postgres <<'SQL'
CREATE FUNCTION public.refuse_13() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN IF NEW.ind = 13 THEN RAISE EXCEPTION 'ind 13 is refused by a trigger'; END IF; RETURN NEW; END $$;
CREATE TRIGGER refuse_13 BEFORE INSERT OR UPDATE ON pinpipe.pin_clean
    FOR EACH ROW EXECUTE FUNCTION public.refuse_13();
SQL

work=$(mktemp -d)
# messages separated by the byte 0x1e, in this order; expected fate in the comment
{
	printf '{"index": 1, "title": "good one", "follower_count": "5k"}\x1e'        # row
	printf '{"index": 2, "title": \x1e'                                            # invalid JSON
	printf '[{"index": 3}]\x1e'                                                    # not an object
	printf '{"title": "no key"}\x1e'                                               # missing key
	printf '{"index": "4"}\x1e'                                                    # wrong type (key)
	printf '{"index": 5, "title": "nul \\u0000 inside"}\x1e'                       # \u0000
	printf '{"index": 6, "title": "\xff\xfe"}\x1e'                                 # invalid UTF-8
	printf '{"index": 7, "title": "good two"}\x1e'                                 # row
	printf '{"index": 8, "title": "%s"}\x1e' "$(head -c 1100000 /dev/zero | tr '\0' x)" # too large
	printf '{"index": 9, "downloaded": "yes"}\x1e'                                 # wrong type
	printf '{"index": 10, "title": "a", "title": "b"}\x1e'                         # duplicate key
	printf '{"index": 11, "unique_id": null, "title": null, "category": null}\x1e' # row (nulls)
	printf '%s\x1e' "$(printf '{"index": 12, "deep": '; for i in $(seq 3000); do printf '['; done; for i in $(seq 3000); do printf ']'; done; printf '}')" # too deep
	printf '{"index": 13, "title": "refused by trigger"}\x1e'                      # statement error
	printf '{"index": 14, "title": "good three"}\x1e'                              # row
	printf '{"index": 3000000000}\x1e'                                             # out of range
	printf '{"index": 15, "title": "good four"}'                                   # row
} >"$work/pin.msgs"
kcat -b "$PP_BROKER" -P -t bad.pin -D $'\x1e' -X message.max.bytes=5000000 <"$work/pin.msgs" || exit 1
printf '{"ind": 1, "latitude": "10.5", "longitude": 20}\x1e{"ind": 2, "latitude": 10.5, "longitude": 20, "country": "X"}' |
	kcat -b "$PP_BROKER" -P -t bad.geo -D $'\x1e'
printf '{"ind": 1, "age": 20.5}\x1e{"ind": 2, "first_name": "A", "last_name": null, "age": null}' |
	kcat -b "$PP_BROKER" -P -t bad.user -D $'\x1e'
rm -rf "$work"

pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix bad
pp_wait_for 60 "SELECT coalesce(sum(next_offset), 0) = 21 FROM pinpipe.offsets WHERE topic LIKE 'bad.%'" || PP_FAILED=1

pp_check "good pins all land in raw; the refused one is a dead letter, not a row" \
	"SELECT array_agg(\"index\" ORDER BY \"index\") = '{1,7,11,14,15}' FROM pinpipe.pin_raw"
pp_check "the trigger's row is not in pin_clean, its neighbours are" \
	"SELECT array_agg(ind ORDER BY ind) = '{1,7,11,14,15}' FROM pinpipe.pin_clean"
pp_check "rows + dead letters = messages consumed, per topic" \
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw) + (SELECT count(*) FROM pinpipe.dead_letters WHERE topic = 'bad.pin') = 17
	    AND (SELECT count(*) FROM pinpipe.geo_raw) + (SELECT count(*) FROM pinpipe.dead_letters WHERE topic = 'bad.geo') = 2
	    AND (SELECT count(*) FROM pinpipe.user_raw) + (SELECT count(*) FROM pinpipe.dead_letters WHERE topic = 'bad.user') = 2"
expect() { # offset, topic, error pattern (the whole error: error_detail when there is one)
	pp_check "dead letter at $2 offset $1: $3" \
		"SELECT coalesce(error_detail, error) LIKE '$3' FROM pinpipe.dead_letters WHERE topic = '$2' AND kafka_offset = $1"
}
expect 1 bad.pin 'invalid JSON at line 1, column %'
expect 2 bad.pin 'message is an array, expected a JSON object'
expect 3 bad.pin 'missing join key "index" (or "ind")'
expect 4 bad.pin 'key "index" is a string, expected an integer'
expect 5 bad.pin 'invalid JSON %\\u0000 is not allowed%'
expect 6 bad.pin 'invalid JSON %unable to decode byte 0xff%'
expect 8 bad.pin 'message of 11000__ bytes exceeds the limit of 1048576 bytes'
expect 9 bad.pin 'key "downloaded" is a string, expected an integer'
expect 10 bad.pin 'invalid JSON %duplicate object key%'
expect 12 bad.pin 'invalid JSON %maximum parsing depth%'
expect 13 bad.pin 'ind 13 is refused by a trigger'
expect 15 bad.pin 'value 3000000000 of key "index" is out of range for type integer'
expect 0 bad.geo 'key "latitude" is a string, expected a number'
expect 0 bad.user 'key "age" is a real number, expected an integer'
pp_check "errors are stable reasons that group; the variable part is in error_detail" \
	"SELECT array_agg(error || ' x' || n ORDER BY error COLLATE \"C\") = '{\"integer value out of range x1\",\"invalid JSON x5\",\"message exceeds pinpipe.max_message_bytes x1\",\"refused by the database (SQLSTATE P0001) x1\"}'
	   FROM (SELECT error, count(*) n FROM pinpipe.dead_letters WHERE topic = 'bad.pin' AND error_detail IS NOT NULL GROUP BY error) g"
pp_check "dead letters keep the payload byte for byte" \
	"SELECT payload = '\\x7b22696e646578223a20362c20227469746c65223a2022fffe227d'::bytea FROM pinpipe.dead_letters WHERE topic = 'bad.pin' AND kafka_offset = 6"
pp_check "the oversized payload is kept whole" \
	"SELECT length(payload) > 1100000 FROM pinpipe.dead_letters WHERE topic = 'bad.pin' AND kafka_offset = 8"
pp_check "nulls everywhere but the key make a row with NULLs" \
	"SELECT title IS NULL AND unique_id IS NULL FROM pinpipe.pin_raw WHERE \"index\" = 11"
pp_check "status counts the dead letters" \
	"SELECT dead_letters >= 11 FROM pinpipe.status WHERE kind = 'pin'"
pp_check "the stream goes on: offsets advanced past every message" \
	"SELECT next_offset = 17 FROM pinpipe.offsets WHERE topic = 'bad.pin'"

# the stream continues after the bad batch
printf '16\t{"index": 16, "title": "after"}\n' | kcat -b "$PP_BROKER" -P -t bad.pin -K $'\t'
pp_wait_for 30 "SELECT count(*) = 1 FROM pinpipe.pin_clean WHERE ind = 16" || PP_FAILED=$((PP_FAILED + 1))

pp_psql -d postgres -c "DROP TRIGGER refuse_13 ON pinpipe.pin_clean" -c "DROP FUNCTION public.refuse_13()" >/dev/null
exit $((PP_FAILED > 0))
