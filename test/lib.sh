# test/lib.sh: shared helpers for the test, demo and benchmark drivers.
#
# Sourced, not run. Provides: pp_install_deps (apt packages), pp_build
# (make && make install), pp_cluster_start / pp_cluster_stop (a throwaway
# PostgreSQL cluster run by an unprivileged user, since PostgreSQL refuses to
# run as root), pp_psql, and PP_* variables describing the cluster.

PP_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PP_PGVERSION=${PP_PGVERSION:-15}
PP_BIN=${PP_BIN:-/usr/lib/postgresql/$PP_PGVERSION/bin}
PP_PACKAGES="build-essential postgresql-$PP_PGVERSION postgresql-server-dev-$PP_PGVERSION
    postgresql-client-$PP_PGVERSION libipc-run-perl librdkafka-dev libjansson-dev kcat
    postgresql-$PP_PGVERSION-cron clang-format
    libmicrohttpd-dev libcurl4-openssl-dev curl wrk python3-requests openssl
    libpq-dev chromium libjs-chart.js nodejs"

pp_log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# The median of the numbers on stdin, one a line (the mean of the middle two
# for an even count).
pp_median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# Run a command as root: directly when we are root, else through sudo.
pp_as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Install the Debian packages the build and the tests need, if any is missing.
pp_install_deps() {
	local missing=()
	for p in $PP_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		pp_log "installing ${missing[*]}"
		pp_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		# postgresql-common must not create its default cluster: we start our own.
		if [ ! -e /etc/postgresql-common/createcluster.conf ] ||
			! grep -q '^create_main_cluster = false' /etc/postgresql-common/createcluster.conf; then
			pp_as_root mkdir -p /etc/postgresql-common/createcluster.d
			echo 'create_main_cluster = false' |
				pp_as_root tee /etc/postgresql-common/createcluster.d/pinpipe.conf >/dev/null
		fi
		pp_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
	# npm (test/t/dashboard.pl installs puppeteer-core with it): Debian's
	# package, unless a nodejs that brings its own is installed
	if ! command -v npm >/dev/null; then
		pp_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
	fi
}

# Build and install the extension and its tools: into the system's server
# tree, or with PP_PRIVATE_INSTALL=1 (test/run.sh) or PP_SANITIZE=1 into a
# private copy of it (pp_private_tree), so that test runs of two checkouts on
# one machine never load each other's build.
pp_build() {
	if [ -n "${PP_SANITIZE:-}" ]; then
		pp_sanitize_build "$@"
		return
	fi
	if [ -n "${PP_PRIVATE_INSTALL:-}" ]; then
		if [ -z "${PP_PRIVATE_ROOT:-}" ] || [ ! -d "$PP_PRIVATE_ROOT" ]; then
			pp_private_tree || return 1
		fi
		(cd "$PP_TOP" && make -s -j2 "$@" >/dev/null &&
			make -s install DESTDIR="$PP_PRIVATE_ROOT" "$@" >/dev/null)
		return
	fi
	(cd "$PP_TOP" && make -s -j2 "$@" >/dev/null && pp_as_root make -s install "$@" >/dev/null)
}

# Copy Debian's server tree (bin, lib, share: pg_cron included) into a new
# private root, PP_PRIVATE_ROOT, and point PP_BIN at its bin. PostgreSQL finds
# its lib and share directories relative to its binaries, so the copy runs as
# is with whatever `make install DESTDIR=$PP_PRIVATE_ROOT` put in it.
pp_private_tree() {
	local sys_bin=$PP_BIN sys_share
	sys_share=$("$sys_bin/pg_config" --sharedir) || return 1
	PP_PRIVATE_ROOT=$(mktemp -d /tmp/pinpipe-root.XXXXXX)
	chmod 755 "$PP_PRIVATE_ROOT"
	mkdir -p "$PP_PRIVATE_ROOT$(dirname "$sys_bin")" "$PP_PRIVATE_ROOT$sys_share"
	cp -a "$(dirname "$sys_bin")/." "$PP_PRIVATE_ROOT$(dirname "$sys_bin")/" &&
		cp -a "$sys_share/." "$PP_PRIVATE_ROOT$sys_share/" || return 1
	PP_BIN=$PP_PRIVATE_ROOT$sys_bin
	export PP_BIN PP_PRIVATE_ROOT
}

# PP_SANITIZE=1 (bash test/run.sh --sanitize): the extension built with ASan
# and UBSan (make SANITIZE=1) and installed into a private server tree
# (pp_private_tree), never into the system's. Its servers run with the
# sanitizer runtimes preloaded (PP_SANITIZE_ENV, used by pp_pg_ctl;
# test/tools/asan_preload.c says why a shim is preloaded too), and write their
# reports to $PP_PRIVATE_ROOT/logs, which pp_sanitizer_reports checks. Leak
# detection is off: a PostgreSQL process frees nothing when it exits. Scripts
# run by test/run.sh (the demo) reuse its tree.
pp_sanitize_build() {
	if [ -z "${PP_PRIVATE_ROOT:-}" ] || [ ! -d "$PP_PRIVATE_ROOT" ]; then
		pp_sanitize_tree || return 1
	fi
	(cd "$PP_TOP" && make -s -j2 SANITIZE=1 "$@" >/dev/null &&
		make -s install SANITIZE=1 DESTDIR="$PP_PRIVATE_ROOT" "$@" >/dev/null)
}

# The private tree, the shim, PP_SANITIZE_ENV.
pp_sanitize_tree() {
	local asan ubsan log
	asan=$(readlink -f "$(gcc -print-file-name=libasan.so)")
	ubsan=$(readlink -f "$(gcc -print-file-name=libubsan.so)")
	[ -f "$asan" ] && [ -f "$ubsan" ] || { echo "no ASan or UBSan runtime for gcc" >&2; return 1; }
	pp_private_tree || return 1
	log=$PP_PRIVATE_ROOT/logs
	mkdir -p "$log"
	chmod 1777 "$log"
	gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$PP_PRIVATE_ROOT/asan_preload.so" \
		"$PP_TOP/test/tools/asan_preload.c" || return 1
	PP_SANITIZE_ENV="LD_PRELOAD=$asan:$ubsan:$PP_PRIVATE_ROOT/asan_preload.so
		ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=1:strict_string_checks=1:log_path=$log/asan:print_cmdline=1
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 PP_UBSAN_LOG_PATH=$log/ubsan"
	# The tree's postgres runs with the runtimes preloaded however it is
	# started (pg_ctl, pg_regress --temp-instance, PostgreSQL::Test::Cluster).
	mv "$PP_BIN/postgres" "$PP_BIN/postgres.real" || return 1
	# shellcheck disable=SC2086 # PP_SANITIZE_ENV is a list of VAR=value words
	printf '#!/bin/sh\nexec env %s "$(dirname "$0")/postgres.real" "$@"\n' "$(echo $PP_SANITIZE_ENV)" >"$PP_BIN/postgres"
	chmod 755 "$PP_BIN/postgres"
	export PP_SANITIZE PP_SANITIZE_ENV
}

# Print the sanitizer reports written since the last call (moved to PP_WORK),
# and those in the server logs under LOG (a file or a directory of *.log);
# fail if there is any.
pp_sanitizer_reports() {
	[ -n "${PP_SANITIZE:-}" ] && [ -n "${PP_PRIVATE_ROOT:-}" ] || return 0
	local f found=0 n log=${1:-$PP_WORK/server.log} pat='ERROR: AddressSanitizer|runtime error:|SUMMARY: [A-Za-z]+Sanitizer'
	for f in "$PP_PRIVATE_ROOT"/logs/*; do
		[ -s "$f" ] || continue
		echo "sanitizer report $(basename "$f"):"
		head -100 "$f"
		mv "$f" "$PP_WORK/sanitizer-$(basename "$f")"
		found=1
	done
	if [ -d "$log" ]; then
		if grep -Eqs "$pat" "$log"/*.log; then
			echo "sanitizer reports in $log:"
			grep -Es "$pat" "$log"/*.log | head -20
			found=1
		fi
	else
		n=$(grep -Ec "$pat" "$log" 2>/dev/null)
		if [ "${n:-0}" -gt "${PP_SANITIZER_SEEN:-0}" ]; then
			echo "sanitizer reports in $log:"
			grep -E "$pat" "$log" | tail -n +"$((${PP_SANITIZER_SEEN:-0} + 1))" | head -20
			PP_SANITIZER_SEEN=$n
			found=1
		fi
	fi
	[ "$found" = 0 ]
}

# pg_ctl as the server user; with PP_SANITIZE, with the sanitizer runtimes preloaded.
pp_pg_ctl() {
	# shellcheck disable=SC2086 # PP_SANITIZE_ENV is a list of VAR=value words
	pp_as_server "$PP_BIN/pg_ctl" "$@"
}

# The unprivileged user that runs the server when we are root.
pp_server_user() {
	if [ "$(id -u)" = 0 ]; then
		id pinpipe >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin pinpipe
		echo pinpipe
	else
		id -un
	fi
}

pp_as_server() {
	if [ "$(id -u)" = 0 ]; then runuser -u "$PP_SERVER_USER" -- "$@"; else "$@"; fi
}

# A free TCP port on loopback, from a starting point.
pp_free_port() {
	local port=${1:-55432}
	while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
	echo "$port"
}

# Start a throwaway cluster. Extra postgresql.conf lines come on stdin (may be empty).
# Sets PP_PGDATA, PGHOST, PGPORT, PGUSER, PGDATABASE.
pp_cluster_start() {
	local extra_conf
	extra_conf=$(cat)
	PP_SERVER_USER=$(pp_server_user)
	PP_WORK=${PP_WORK:-$(mktemp -d /tmp/pinpipe.XXXXXX)}
	chmod 755 "$PP_WORK"
	chown "$PP_SERVER_USER" "$PP_WORK" 2>/dev/null || true
	PP_PGDATA=$PP_WORK/pgdata
	PGPORT=$(pp_free_port "${PGPORT:-55432}")
	pp_as_server "$PP_BIN/initdb" -D "$PP_PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
		>"$PP_WORK/initdb.log" 2>&1 || { cat "$PP_WORK/initdb.log" >&2; return 1; }
	cat >>"$PP_PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PP_WORK'
shared_preload_libraries = 'pinpipe,pg_cron'
cron.database_name = 'postgres'
max_worker_processes = 16
log_line_prefix = '%m [%p] %q%a '
$extra_conf
CONF
	pp_pg_ctl -D "$PP_PGDATA" -l "$PP_WORK/server.log" -w -t 60 start >/dev/null ||
		{ cat "$PP_WORK/server.log" >&2; return 1; }
	export PGHOST=$PP_WORK PGPORT PGUSER=postgres PGDATABASE=postgres
	export PP_WORK PP_PGDATA PP_SERVER_USER
}

pp_cluster_ctl() {
	pp_pg_ctl -D "$PP_PGDATA" -l "$PP_WORK/server.log" -w -t 120 "$@" >/dev/null
}

pp_cluster_stop() {
	[ -n "${PP_PGDATA:-}" ] && [ -d "$PP_PGDATA" ] || return 0
	pp_as_server "$PP_BIN/pg_ctl" -D "$PP_PGDATA" -m fast -w stop >/dev/null 2>&1 || true
}

pp_psql() {
	psql -X -q -v ON_ERROR_STOP=1 -At "$@"
}

# ---- helpers for the demo and the benchmarks (the tests use test/perl/PinPipe/Test.pm) ----

PP_BROKER_BIN=${PP_BROKER_BIN:-$PP_TOP/src/bin/pinpipe-broker}
PP_EMULATE_BIN=${PP_EMULATE_BIN:-$PP_TOP/src/bin/pinpipe-emulate}

# Start an embedded broker: pp_broker_start NAME [pinpipe-broker options].
# Sets PP_BROKER (bootstrap address), PP_BROKER_PID, PP_BROKER_CTL (control FIFO).
pp_broker_start() {
	local name=$1
	shift
	local dir
	dir=$(mktemp -d "/tmp/pinpipe-broker-$name.XXXXXX")
	"$PP_BROKER_BIN" --quiet --bootstrap-file "$dir/bootstrap" --control "$dir/control" "$@" \
		>"$dir/stdout" 2>"$dir/stderr" &
	PP_BROKER_PID=$!
	PP_BROKER_CTL=$dir/control
	for _ in $(seq 100); do
		[ -s "$dir/bootstrap" ] && [ -p "$dir/control" ] && break
		sleep 0.1
	done
	PP_BROKER=$(cat "$dir/bootstrap" 2>/dev/null) || { echo "broker $name did not start" >&2; cat "$dir/stderr" >&2; return 1; }
	PP_BROKER_DIRS="${PP_BROKER_DIRS:-} $dir"
	PP_BROKER_PIDS="${PP_BROKER_PIDS:-} $PP_BROKER_PID"
}

pp_brokers_stop() {
	for pid in ${PP_BROKER_PIDS:-}; do kill "$pid" 2>/dev/null; done
	for pid in ${PP_BROKER_PIDS:-}; do wait "$pid" 2>/dev/null; done
	for d in ${PP_BROKER_DIRS:-}; do rm -rf "$d"; done
	PP_BROKER_PIDS= PP_BROKER_DIRS=
}

# Send a fault-injection command to a broker's control FIFO.
pp_broker_ctl() {
	local fifo=$1
	shift
	timeout 5 bash -c 'echo "$1" > "$2"' _ "$*" "$fifo"
}

# Set pinpipe.* settings with ALTER SYSTEM and reload: pp_set name value [name value]...
pp_set() {
	while [ $# -ge 2 ]; do
		pp_psql -d postgres -c "ALTER SYSTEM SET $1 = '$2'" >/dev/null
		shift 2
	done
	pp_psql -d postgres -c "SELECT pg_reload_conf()" >/dev/null
}

# Poll a query until it returns 't': pp_wait_for SECONDS SQL [db]. Tolerates a
# server that is restarting. Fails (returns 1) on timeout, printing the query.
pp_wait_for() {
	local secs=$1 sql=$2 db=${3:-postgres} out
	local deadline=$((SECONDS + secs))
	while [ $SECONDS -lt $deadline ]; do
		out=$(psql -X -At -d "$db" -c "$sql" 2>/dev/null) && [ "$out" = t ] && return 0
		sleep 0.2
	done
	echo "timed out after ${secs}s waiting for: $sql" >&2
	return 1
}
