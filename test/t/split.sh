#!/usr/bin/env bash
# Scaling out: two PostgreSQL clusters on one machine split one topic set by
# pinpipe.partitions (0-3 and 4-7), the second with pinpipe.workers = 2.
# Together they store every (partition, offset) exactly once, each only its
# own partitions; nothing lost, nothing duplicated.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
work2=$(mktemp -d /tmp/pinpipe-split.XXXXXX)
emu=
stop2() { [ -d "$work2/pgdata" ] && pp_as_server "$PP_BIN/pg_ctl" -D "$work2/pgdata" -m fast -w stop >/dev/null 2>&1; rm -rf "$work2"; }
trap 'kill $emu 2>/dev/null; pp_brokers_stop; stop2; pp_set pinpipe.partitions ""' EXIT

pp_reset_pinpipe
pp_broker_start split --partitions 8 --prefix split || exit 1
# the second cluster: its own data directory, port and two workers
port2=$(
	PP_WORK=$work2 PGPORT=$((PGPORT + 7))
	pp_cluster_start <<CONF >/dev/null || exit 1
pinpipe.workers = 2
pinpipe.partitions = '4-7'
pinpipe.brokers = '$PP_BROKER'
pinpipe.topic_prefix = 'split'
CONF
	echo "$PGPORT"
)
[ -n "$port2" ] || { echo "  FAILED: second cluster did not start"; exit 1; }
psql2() { psql -X -At -h "$work2" -p "$port2" -U postgres -d postgres "$@"; }
psql2 -q -c "CREATE EXTENSION pinpipe" || exit 1
pp_set pinpipe.partitions '0-3' pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix split

"$PP_EMULATE_BIN" --brokers "$PP_BROKER" --prefix split --data data --synthetic --seed 11 \
	--count 12000 --rate 3000 --quiet 2>/dev/null &
emu=$!
wait $emu || { echo "  FAILED: emulator"; PP_FAILED=1; }
emu=
deadline=$((SECONDS + 120))
sum_offsets="SELECT coalesce(sum(next_offset), 0) FROM pinpipe.offsets WHERE topic LIKE 'split.%'"
while [ $SECONDS -lt $deadline ]; do
	a=$(pp_psql -d postgres -c "$sum_offsets")
	b=$(psql2 -c "$sum_offsets")
	[ $((a + b)) = 36000 ] && break
	sleep 0.5
done
echo "  cluster 1 stored $a messages, cluster 2 stored $b"
[ $((a + b)) = 36000 ] && echo "  ok: the two clusters consumed all 36000 messages" ||
	{ echo "  FAILED: consumed $((a + b)) of 36000"; PP_FAILED=$((PP_FAILED + 1)); }

stored="SELECT 'split.pin', kafka_partition, kafka_offset FROM pinpipe.pin_raw
        UNION ALL SELECT 'split.geo', kafka_partition, kafka_offset FROM pinpipe.geo_raw
        UNION ALL SELECT 'split.user', kafka_partition, kafka_offset FROM pinpipe.user_raw
        UNION ALL SELECT topic, kafka_partition, kafka_offset FROM pinpipe.dead_letters"
pp_psql -d postgres -F ' ' -c "$stored" >"$work2/c1"
psql2 -F ' ' -c "$stored" >"$work2/c2"
[ "$(awk '$2 > 3' "$work2/c1" | wc -l)" = 0 ] && echo "  ok: cluster 1 stored only partitions 0-3" ||
	{ echo "  FAILED: cluster 1 stored other partitions"; PP_FAILED=$((PP_FAILED + 1)); }
[ "$(awk '$2 < 4' "$work2/c2" | wc -l)" = 0 ] && echo "  ok: cluster 2 stored only partitions 4-7" ||
	{ echo "  FAILED: cluster 2 stored other partitions"; PP_FAILED=$((PP_FAILED + 1)); }
dups=$(sort "$work2/c1" "$work2/c2" | uniq -d | wc -l)
[ "$dups" = 0 ] && echo "  ok: no (partition, offset) stored twice across the clusters" ||
	{ echo "  FAILED: $dups duplicates"; PP_FAILED=$((PP_FAILED + 1)); }
missing=0
for t in pin geo user; do
	for p in $(seq 0 7); do
		hw=$(kcat -b "$PP_BROKER" -Q -t "split.$t:$p:-1" | awk '{print $NF}')
		n=$(cat "$work2/c1" "$work2/c2" | awk -v t="split.$t" -v p="$p" '$1 == t && $2 == p' | sort -u | wc -l)
		[ "$n" = "$hw" ] || missing=$((missing + 1))
	done
done
[ $missing = 0 ] && echo "  ok: every partition complete up to its high watermark" ||
	{ echo "  FAILED: $missing partitions incomplete"; PP_FAILED=$((PP_FAILED + 1)); }
w=$(psql2 -c "SELECT count(DISTINCT pid) FROM pinpipe.status WHERE state IN ('consuming', 'caught up')")
[ "$w" = 2 ] && echo "  ok: cluster 2 ran two workers" || { echo "  FAILED: cluster 2 workers: $w"; PP_FAILED=$((PP_FAILED + 1)); }
parts=$(psql2 -c "SELECT string_agg(worker || ':' || kafka_partition, ',' ORDER BY worker, kafka_partition) FROM pinpipe.partition_lag WHERE topic = 'split.pin'")
[ "$parts" = "0:4,0:6,1:5,1:7" ] && echo "  ok: its workers split partitions 4-7 between them ($parts)" ||
	{ echo "  FAILED: worker split $parts"; PP_FAILED=$((PP_FAILED + 1)); }
exit $((PP_FAILED > 0))
