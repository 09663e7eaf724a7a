#!/usr/bin/env bash
# test/bench_ingest.sh: messages per second the worker sustains draining a
# pre-loaded backlog from the embedded broker, exactly-once offsets on.
# A benchmark, not a test: it prints figures.
#   bash test/bench_ingest.sh [MESSAGES] [PARTITIONS] [synthetic|sample]
#                                           (default 200000 48 synthetic)
# synthetic: every record a new ind; sample: records drawn from the sample
# data, as the original emulation posts them, so that most inds repeat (the
# clean rows are then mostly updates).
# The embedded broker keeps at most 5 MB per partition: the backlog is spread
# over enough partitions, and the script checks none was trimmed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"
N=${1:-200000}
PARTS=${2:-48}
MODE=${3:-synthetic}
case $MODE in
synthetic) SYNTHETIC=--synthetic ;;
sample) SYNTHETIC= ;;
*) echo "bench_ingest.sh: the third argument is synthetic or sample" >&2 && exit 2 ;;
esac
RECORDS=$(((N + 2) / 3))

pp_install_deps
pp_build
PP_WORK=$(mktemp -d /tmp/pinpipe-bench.XXXXXX)
trap 'pp_brokers_stop; pp_cluster_stop; rm -rf "$PP_WORK"' EXIT
pp_cluster_start <<'CONF'
shared_buffers = 512MB
max_wal_size = 4GB
CONF
pp_psql -c "CREATE EXTENSION pinpipe" >/dev/null
pp_broker_start bench --partitions "$PARTS" --prefix bench

echo "loading a backlog of $((RECORDS * 3)) messages ($RECORDS records) over $PARTS partitions..."
"$PP_EMULATE_BIN" --brokers "$PP_BROKER" --prefix bench --data data $SYNTHETIC --seed 1 \
	--count "$RECORDS" --quiet
total=$((RECORDS * 3))
low=$(for t in pin geo user; do for p in $(seq 0 $((PARTS - 1))); do
	kcat -b "$PP_BROKER" -Q -t "bench.$t:$p:-2" 2>/dev/null | awk '{print $NF}'; done; done | awk '{s+=$1} END {print s+0}')
[ "$low" = 0 ] || { echo "the broker trimmed $low messages: use more partitions"; exit 1; }

start=$(date +%s.%N)
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix bench
pp_wait_for 900 "SELECT coalesce(sum(next_offset), 0) = $total FROM pinpipe.offsets WHERE topic LIKE 'bench.%'"
end=$(date +%s.%N)
rows=$(pp_psql -c "SELECT (SELECT count(*) FROM pinpipe.pin_raw) + (SELECT count(*) FROM pinpipe.geo_raw) + (SELECT count(*) FROM pinpipe.user_raw) + (SELECT count(*) FROM pinpipe.dead_letters)")
batches=$(pp_psql -c "SELECT sum(batches) FROM pinpipe.status")
awk -v n="$total" -v s="$start" -v e="$end" -v r="$rows" -v b="$batches" 'BEGIN {
	printf "drained %d messages (%d stored) in %.2f s: %.0f messages/s, %d batches\n", n, r, e - s, n / (e - s), b }'
