#!/usr/bin/env bash
# A backlog of 1M messages: the worker drains it with bounded memory (peak
# private RSS reported, loose bound asserted) while the server stays
# responsive to queries (worst latency of a query run every 0.2 s reported,
# loose bound asserted), and stores every message exactly once.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$PP_TOP"
trap 'pp_brokers_stop' EXIT
records=333334
total=$((records * 3))

pp_reset_pinpipe
# about 650 bytes a message: 160 partitions keep each under the broker's 5 MB
pp_broker_start backlog --partitions 160 --prefix backlog || exit 1
"$PP_EMULATE_BIN" --brokers "$PP_BROKER" --prefix backlog --data data --synthetic --seed 3 \
	--count $records --quiet 2>/dev/null || { echo "  FAILED: emulator"; exit 1; }
low=$(for t in pin geo user; do kcat -b "$PP_BROKER" -Q -t "backlog.$t:0:-2" -t "backlog.$t:159:-2"; done | awk '{s += $NF} END {print s + 0}')
[ "$low" = 0 ] || { echo "  FAILED: the broker trimmed the backlog"; exit 1; }

pid=$(pp_worker_pid)
start=$(date +%s.%N)
pp_set pinpipe.brokers "$PP_BROKER" pinpipe.topic_prefix backlog
worst=0
peak_anon=0
deadline=$((SECONDS + 300))
while [ $SECONDS -lt $deadline ]; do
	t0=$(date +%s%N)
	done_=$(psql -X -At -d postgres -c "SELECT coalesce(sum(next_offset), 0) = $total FROM pinpipe.offsets WHERE topic LIKE 'backlog.%'" \
		-c "SELECT count(*) FROM pinpipe.user_clean" 2>/dev/null | head -1)
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ $ms -gt $worst ] && worst=$ms
	anon=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
	[ "${anon:-0}" -gt $peak_anon ] && peak_anon=$anon
	[ "$done_" = t ] && break
	sleep 0.2
done
end=$(date +%s.%N)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
awk -v n=$total -v s="$start" -v e="$end" 'BEGIN { printf "  figure: drained %d messages in %.1f s (%.0f messages/s)\n", n, e - s, n / (e - s) }'
echo "  figure: worker peak private memory (RssAnon) $((peak_anon / 1024)) MB, VmHWM (with the shared buffers it touched) $((hwm / 1024)) MB"
echo "  figure: worst latency of a status query plus a count(*) while draining: $worst ms"
[ $((peak_anon / 1024)) -lt 512 ] && echo "  ok: worker memory bounded (< 512 MB private)" ||
	{ echo "  FAILED: worker private memory $((peak_anon / 1024)) MB"; PP_FAILED=$((PP_FAILED + 1)); }
[ $worst -lt 3000 ] && echo "  ok: the server answered every query within 3 s while draining" ||
	{ echo "  FAILED: a query took $worst ms while draining"; PP_FAILED=$((PP_FAILED + 1)); }
pp_check "the same worker drained it all" "SELECT pid = $pid FROM pinpipe.status WHERE kind = 'pin'"
pp_check_complete backlog $total
exit $((PP_FAILED > 0))
