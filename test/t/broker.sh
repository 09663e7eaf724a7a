#!/usr/bin/env bash
# test/t/broker.sh: pinpipe-broker, the embedded Kafka-protocol broker.
#
# Builds the tool, starts it with a control FIFO and checks it with kcat: the
# three topics exist with 4 partitions, 1000 keyed messages come back exactly
# once, "down 1" makes the broker unreachable and "up 1" brings it back,
# injected NOT_LEADER_FOR_PARTITION errors are retried by the client, and
# topic-error makes a topic unknown and clear brings it back, SIGTERM exits 0
# and removes the FIFO, and --port restarts the broker on the same address.
# Every wait is bounded.
#
#   bash test/t/broker.sh        exit 0 = pass; prints what failed otherwise
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

work=$(mktemp -d /tmp/pinpipe-broker-test.XXXXXX)
fifo=$work/control
broker_pid=

# Stop the broker if it still runs (politely, then not) and remove our files.
cleanup() {
	if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
		kill -TERM "$broker_pid" 2>/dev/null
		for _ in $(seq 20); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$broker_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	if [ -s "$work/broker.err" ]; then
		echo "--- broker stderr (last 30 lines):"
		tail -30 "$work/broker.err"
	fi
	exit 1
}

pass() { echo "ok: $*"; }

# Poll a command every 0.1 s for at most $1 seconds; fail early if the broker died.
wait_until() {
	local tries=$(($1 * 10))
	shift
	for _ in $(seq "$tries"); do
		"$@" && return 0
		if [ -n "$broker_pid" ] && ! kill -0 "$broker_pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 1
}

broker_gone() { ! kill -0 "$broker_pid" 2>/dev/null; }

# Does the broker's stderr have $2 (a fixed string) after line $1?
logged_after() { tail -n "+$(($1 + 1))" "$work/broker.err" | grep -qF -- "$2"; }

# Send a control command and wait (at most 5 s) for the result line we expect.
# The mock cluster can take up to a second to apply a command.
control() {
	local cmd=$1 expect=$2 before
	before=$(wc -l <"$work/broker.err")
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 5 bash -c 'printf "%s\n" "$1" >"$2"' _ "$cmd" "$fifo" ||
		fail "could not write \"$cmd\" to the control FIFO"
	wait_until 5 logged_after "$before" "pinpipe-broker: $expect" ||
		fail "no \"$expect\" reply to \"$cmd\""
}

# Consume brokertest.pin from the beginning to its end as key:value lines.
consume_all() {
	timeout 30 kcat -b "$addr" -C -e -q -o beginning -t brokertest.pin -f '%k:%s\n' \
		>"$work/consumed" 2>"$work/consume.err" || {
		cat "$work/consume.err"
		fail "consume failed"
	}
}

command -v kcat >/dev/null || fail "kcat is not installed"
make -s src/bin/pinpipe-broker || fail "could not build src/bin/pinpipe-broker"

src/bin/pinpipe-broker --partitions 4 --prefix brokertest --bootstrap-file "$work/bootstrap" \
	--control "$fifo" >"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!

wait_until 10 test -s "$work/bootstrap" || fail "no bootstrap file within 10 s"
addr=$(cat "$work/bootstrap")
[ -p "$fifo" ] || fail "the control FIFO $fifo was not created"
[ "$(head -1 "$work/broker.out")" = "$addr" ] ||
	fail "stdout's first line \"$(head -1 "$work/broker.out")\" is not the bootstrap address \"$addr\""
case $addr in 127.0.0.1:*) ;; *) fail "bootstrap address \"$addr\" is not on loopback" ;; esac
pass "started, bootstrap $addr"

# (1) metadata: the three topics, 4 partitions each
timeout 20 kcat -b "$addr" -L -m 5 >"$work/metadata" 2>&1 || {
	cat "$work/metadata"
	fail "kcat -L failed"
}
for t in brokertest.pin brokertest.geo brokertest.user; do
	grep -qF "topic \"$t\" with 4 partitions" "$work/metadata" || {
		cat "$work/metadata"
		fail "topic $t with 4 partitions not in the metadata"
	}
done
pass "metadata lists brokertest.pin, .geo and .user with 4 partitions each"

# (2) 1000 keyed messages round-trip exactly once
seq 1 1000 | sed 's/.*/key&:value&/' >"$work/sent"
timeout 60 kcat -b "$addr" -P -K: -t brokertest.pin <"$work/sent" >"$work/produce.err" 2>&1 || {
	cat "$work/produce.err"
	fail "producing 1000 messages failed"
}
consume_all
[ "$(wc -l <"$work/consumed")" = 1000 ] || fail "consumed $(wc -l <"$work/consumed") messages, not 1000"
sort "$work/sent" >"$work/sent.sorted"
sort "$work/consumed" >"$work/consumed.sorted"
cmp -s "$work/sent.sorted" "$work/consumed.sorted" || {
	diff "$work/sent.sorted" "$work/consumed.sorted" | head
	fail "consumed messages differ from those produced"
}
pass "1000 keyed messages produced and consumed back exactly once"

# control protocol: a bad command is reported and the broker keeps running
control "no-such-command 1" 'error: "no-such-command 1": unknown command'
control "status" "bootstrap $addr brokers 1 down none"
pass "bad control command reported, status works"

# (3) outage: with broker 1 down nothing can reach the cluster
control "down 1" "broker 1 down"
if timeout 20 kcat -b "$addr" -L -m 2 >"$work/down.metadata" 2>&1; then
	cat "$work/down.metadata"
	fail "kcat -L succeeded while broker 1 was down"
fi
if echo "down:1" | timeout 20 kcat -b "$addr" -P -K: -t brokertest.pin \
	-X message.timeout.ms=3000 >"$work/down.produce" 2>&1; then
	cat "$work/down.produce"
	fail "produce succeeded while broker 1 was down"
fi
pass "while down, metadata and produce fail"
control "up 1" "broker 1 up"
seq 1 10 | sed 's/.*/up&:after-up&/' >"$work/sent.up"
timeout 30 kcat -b "$addr" -P -K: -t brokertest.pin -X message.timeout.ms=20000 \
	<"$work/sent.up" >"$work/up.produce" 2>&1 || {
	cat "$work/up.produce"
	fail "produce failed after up 1"
}
consume_all
[ "$(wc -l <"$work/consumed")" = 1010 ] ||
	fail "after up 1 consumed $(wc -l <"$work/consumed") messages, not 1010"
[ "$(sort -u "$work/consumed" | wc -l)" = 1010 ] || fail "duplicates after up 1"
grep -q '^down:' "$work/consumed" && fail "the message produced while down was stored"
for i in 1 10; do
	grep -qx "up$i:after-up$i" "$work/consumed" || fail "up$i not consumed after up 1"
done
pass "after up 1, produce and consume work again"

# (4) injected produce errors: the client retries and the message lands once
control "error Produce 3 NOT_LEADER_FOR_PARTITION" \
	"next 3 Produce(0) requests fail with NOT_LEADER_FOR_PARTITION (6)"
echo "retry:retried" | timeout 30 kcat -b "$addr" -P -K: -t brokertest.pin -d msg \
	-X message.timeout.ms=20000 >"$work/retry.produce" 2>&1 || {
	tail -20 "$work/retry.produce"
	fail "produce failed with 3 injected NOT_LEADER_FOR_PARTITION errors"
}
grep -q "Not leader for partition" "$work/retry.produce" ||
	fail "the client never saw the injected NOT_LEADER_FOR_PARTITION errors"
consume_all
[ "$(grep -cx 'retry:retried' "$work/consumed")" = 1 ] ||
	fail "the retried message was stored $(grep -cx 'retry:retried' "$work/consumed") times, not once"
pass "produce retried through 3 injected NOT_LEADER_FOR_PARTITION errors"

# (5) topic-error: metadata reports the topic as unknown, "clear" brings it back
control "topic-error brokertest.geo UNKNOWN_TOPIC_OR_PART" \
	"topic brokertest.geo: metadata reports UNKNOWN_TOPIC_OR_PART (3)"
timeout 20 kcat -b "$addr" -L -t brokertest.geo -m 5 >"$work/deleted.metadata" 2>&1
grep -q "Unknown topic or partition" "$work/deleted.metadata" || {
	cat "$work/deleted.metadata"
	fail "brokertest.geo still listed after topic-error"
}
control "topic-error brokertest.geo clear" "topic brokertest.geo: error cleared"
timeout 20 kcat -b "$addr" -L -t brokertest.geo -m 5 >"$work/back.metadata" 2>&1
grep -qF 'topic "brokertest.geo" with 4 partitions' "$work/back.metadata" || {
	cat "$work/back.metadata"
	fail "brokertest.geo not back after topic-error clear"
}
control "topic-error brokertest.geo NO_SUCH_ERROR" \
	'error: "topic-error brokertest.geo NO_SUCH_ERROR": unknown error name'
pass "topic-error reports a topic as unknown, and clear brings it back"

# (6) SIGTERM: exit 0 within 5 s, FIFO and bootstrap file removed
kill -TERM "$broker_pid"
wait_until 5 broker_gone ||
	fail "broker still running 5 s after SIGTERM"
wait "$broker_pid"
rc=$?
broker_pid=
[ "$rc" = 0 ] || fail "broker exited $rc after SIGTERM, not 0"
[ -e "$fifo" ] && fail "the control FIFO was not removed"
[ -e "$work/bootstrap" ] && fail "the bootstrap file was not removed"
grep -qF "pinpipe-broker: shutting down" "$work/broker.err" || fail "no shutdown message"
pass "SIGTERM: exit 0, FIFO and bootstrap file removed"

# (7) --port: the same address again after a restart; a port in use is refused
port=${addr##*:}
src/bin/pinpipe-broker --port "$port" --partitions 2 --prefix brokertest --bootstrap-file "$work/bootstrap" \
	>"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!
wait_until 10 test -s "$work/bootstrap" || fail "no bootstrap file within 10 s with --port $port"
[ "$(cat "$work/bootstrap")" = "$addr" ] || fail "--port $port: bootstrap $(cat "$work/bootstrap"), not $addr"
timeout 20 kcat -b "$addr" -L -m 5 >"$work/metadata" 2>&1
grep -qF 'topic "brokertest.pin" with 2 partitions' "$work/metadata" || {
	cat "$work/metadata"
	fail "the restarted broker on port $port does not answer"
}
if timeout 10 src/bin/pinpipe-broker --port "$port" >/dev/null 2>"$work/busy.err"; then
	fail "a second broker started on the busy port $port"
fi
grep -q "cannot listen on 127.0.0.1:$port" "$work/busy.err" || {
	cat "$work/busy.err"
	fail "no clear error for a busy port"
}
pass "--port: a restarted broker keeps its address; a busy port is refused"

echo "all broker checks passed"
