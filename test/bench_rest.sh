#!/usr/bin/env bash
# test/bench_rest.sh: the front door's throughput and latency against its
# limit, kcat producing the same records straight to the same broker, in one
# run. A benchmark, not a test: it prints figures and ratios.
#
#   bash test/bench_rest.sh [SECONDS]     each HTTP measurement lasts SECONDS (default 10)
#
# Measured, with the same pin row (about 600 bytes) as the record:
#   1. kcat -P (idempotent, acks=all) of 300,000 records: the direct limit
#   2. pinpipe-rest, 100 records a request (wrk, 8 connections, keep-alive)
#   3. pinpipe-rest, 1 record a request (wrk, 64 connections, keep-alive)
#   4. pinpipe-rest, 1 record a request at about 1,000 requests/s (wrk, 13
#      connections each pausing 10 ms between requests): p50/p99 latency
# and pinpipe-rest's peak RSS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$PP_TOP"
SECS=${1:-10}
KCAT_N=300000

pp_install_deps
make -s src/bin/pinpipe-broker src/bin/pinpipe-rest >/dev/null
W=$(mktemp -d /tmp/pinpipe-bench-rest.XXXXXX)
REST_PID=
cleanup() {
	[ -n "$REST_PID" ] && kill "$REST_PID" 2>/dev/null && wait "$REST_PID" 2>/dev/null
	pp_brokers_stop
	rm -rf "$W"
}
trap cleanup EXIT

pp_broker_start bench --partitions 6 --prefix bench --topic bench.direct:12 >/dev/null
src/bin/pinpipe-rest --brokers "$PP_BROKER" --listen 127.0.0.1:0 --quiet >"$W/rest.out" 2>"$W/rest.err" &
REST_PID=$!
for _ in $(seq 100); do grep -q '^listening on' "$W/rest.out" && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$W/rest.out")
[ -n "$URL" ] || { cat "$W/rest.err"; exit 1; }
ROW=$(head -1 data/pin.jsonl)
printf 'record: %d bytes (the first pin row); broker %s; pinpipe-rest %s\n' "${#ROW}" "$PP_BROKER" "$URL"

# 1. kcat direct
for _ in $(seq $KCAT_N); do printf '%s\n' "$ROW"; done >"$W/rows"
start=$(date +%s.%N)
kcat -b "$PP_BROKER" -P -t bench.direct -X enable.idempotence=true -X acks=all -X linger.ms=5 "$W/rows" 2>/dev/null ||
	kcat -b "$PP_BROKER" -P -t bench.direct -X enable.idempotence=true -X acks=all -X linger.ms=5 <"$W/rows"
end=$(date +%s.%N)
# the broker keeps only 5 MB a partition: count by the last offsets
n=$(kcat -b "$PP_BROKER" -C -t bench.direct -o -1 -e -q -f '%o\n' | awk '{ s += $1 + 1 } END { print s + 0 }')
[ "$n" = $KCAT_N ] || { echo "kcat delivered $n of $KCAT_N"; exit 1; }
KCAT_RPS=$(awk -v n=$KCAT_N -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')
printf '\n1. kcat -P direct (idempotent, acks=all):       %8s records/s  (%d records)\n' "$KCAT_RPS" $KCAT_N

# wrk scripts: a POST of N records
lua() {
	local n=$1 pause=${2:-0}
	{
		echo 'wrk.method = "POST"'
		echo 'wrk.headers["Content-Type"] = "application/vnd.kafka.json.v2+json"'
		printf 'wrk.body = [==[{"records": ['
		for i in $(seq "$n"); do
			[ "$i" -gt 1 ] && printf ', '
			printf '{"value": %s}' "$ROW"
		done
		echo ']}]==]'
		echo 'local errors = 0'
		echo 'response = function(status, headers, body) if status ~= 200 or body:find("\"error_code\": [12]") then errors = errors + 1 end end'
		[ "$pause" -gt 0 ] && echo "delay = function() return $pause end"
		echo 'done = function(summary, latency, requests) io.write(string.format("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000)) end'
	} >"$W/post$n.lua"
}
run_wrk() {
	local name=$1 n=$2 conns=$3 pause=${4:-0}
	lua "$n" "$pause"
	wrk -t 2 -c "$conns" -d "${SECS}s" --timeout 30s -s "$W/post$n.lua" "$URL/topics/bench.pin" >"$W/$name.wrk" 2>&1
	REQS=$(awk '/Requests\/sec:/ { print $2 }' "$W/$name.wrk")
	LAT=$(grep '^p50' "$W/$name.wrk")
	BAD=$(awk '/Non-2xx/ { print $NF }' "$W/$name.wrk")
	SOCK=$(grep 'Socket errors' "$W/$name.wrk" || true)
}

run_wrk batch 100 8
RPS100=$(awk -v r="$REQS" 'BEGIN { printf "%.0f", r * 100 }')
printf '2. pinpipe-rest, 100 records a request, 8 conns: %8s records/s  (%s requests/s; %s)%s\n' \
	"$RPS100" "$REQS" "$LAT" "${BAD:+; non-2xx $BAD}${SOCK:+; $SOCK}"
run_wrk single 1 64
RPS1=$REQS
printf '3. pinpipe-rest, 1 record a request, 64 conns:   %8s records/s  (%s requests/s; %s)%s\n' \
	"$(printf '%.0f' "$RPS1")" "$RPS1" "$LAT" "${BAD:+; non-2xx $BAD}${SOCK:+; $SOCK}"
run_wrk paced 1 13 10
printf '4. pinpipe-rest, 1 record a request, paced:      %8s requests/s (13 conns, 10 ms pauses; %s)%s\n' \
	"$(printf '%.0f' "$REQS")" "$LAT" "${BAD:+; non-2xx $BAD}${SOCK:+; $SOCK}"

metrics=$(curl -s "$URL/metrics")
failed=$(sed -n 's/^pinpipe_rest_records_failed_total //p' <<<"$metrics")
produced=$(sed -n 's/^pinpipe_rest_records_produced_total //p' <<<"$metrics")
peak=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$REST_PID/status")
echo
printf 'ratio 100 records a request / kcat direct: %.2fx\n' "$(awk -v a="$RPS100" -v b="$KCAT_RPS" 'BEGIN { print a / b }')"
printf 'ratio 1 record a request / kcat direct:    %.2fx\n' "$(awk -v a="$RPS1" -v b="$KCAT_RPS" 'BEGIN { print a / b }')"
echo "records produced through pinpipe-rest: $produced, failed: $failed; peak RSS of pinpipe-rest: $peak MB"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
