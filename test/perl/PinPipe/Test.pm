# PinPipe::Test: what pinpipe's TAP tests (test/t/*.pl) share, on top of
# PostgreSQL's own PostgreSQL::Test::Cluster.
#
# A test makes its own node(s) with pp_node, its own embedded broker with
# PinPipe::Test::Broker->new, produces with kcat (pp_kcat_produce) or the
# project's tools (pp_tool), and checks exactly once with pp_check_complete.
# Nothing is shared between tests. test/run.sh runs them with prove, as an
# unprivileged user, with PATH pointing at the server tree pinpipe was
# installed into.
package PinPipe::Test;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use Exporter 'import';
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(pp_top pp_node pp_tool pp_data pp_kcat_produce pp_keyed_lines pp_set
  pp_wait_for pp_check pp_check_complete pp_worker_pid pp_run pp_sanitizing);

# The checkout's top directory (two levels above this file).
my $top = abs_path(dirname(__FILE__) . '/../../..');
sub pp_top { return $top; }

# Path of a tool built in the checkout (src/bin/NAME).
sub pp_tool
{
	my ($name) = @_;
	my $path = "$top/src/bin/$name";
	croak "no tool $path (run make)" unless -x $path;
	return $path;
}

# Path of a sample table shipped in data/ (pin, geo, user).
sub pp_data { return "$top/data/$_[0].jsonl"; }

# True when the suite runs with the sanitizer build (test/run.sh --sanitize).
sub pp_sanitizing { return $ENV{PP_SANITIZE} ? 1 : 0; }

# A started node with pinpipe preloaded and, unless extension => 0, the
# extension created in postgres. Options: brokers, prefix (pinpipe.topic_prefix),
# conf (more postgresql.conf lines), extension, version (of CREATE EXTENSION).
sub pp_node
{
	my ($name, %opt) = @_;
	my $node = PinPipe::Test::Node->new($name);
	$node->init;
	my $conf = <<"CONF";
shared_preload_libraries = 'pinpipe,pg_cron'
cron.database_name = 'postgres'
max_worker_processes = 16
restart_after_crash = on
log_statement = none
wal_level = replica
search_path = 'public'
max_wal_senders = 0
CONF
	$conf .= "pinpipe.brokers = '$opt{brokers}'\n" if defined $opt{brokers};
	$conf .= "pinpipe.topic_prefix = '$opt{prefix}'\n" if defined $opt{prefix};
	$conf .= "$opt{conf}\n" if defined $opt{conf};
	$node->append_conf('postgresql.conf', $conf);
	$node->start;
	if ($opt{extension} // 1)
	{
		my $v = defined $opt{version} ? " VERSION '$opt{version}'" : '';
		$node->safe_psql('postgres', "CREATE EXTENSION pinpipe$v");
	}
	return $node;
}

# Set settings with ALTER SYSTEM and reload: pp_set($node, name => value, ...).
sub pp_set
{
	my ($node, @pairs) = @_;
	while (my ($k, $v) = splice(@pairs, 0, 2))
	{
		$v =~ s/'/''/g;
		$node->safe_psql('postgres', "ALTER SYSTEM SET $k = '$v'");
	}
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	return;
}

# Poll a query until it returns 't', at most $secs seconds (default 180);
# fail the test (with the query) if it never does. Returns true on success.
sub pp_wait_for
{
	my ($node, $sql, $secs, $db) = @_;
	$secs //= 180;
	$db   //= 'postgres';
	my $deadline = time + $secs;
	my $out = '';
	while (time < $deadline)
	{
		my ($ret, $stdout, $stderr) = $node->psql($db, $sql);
		$out = $ret == 0 ? $stdout : $stderr;
		return 1 if $ret == 0 && $stdout eq 't';
		usleep(200_000);
	}
	fail("timed out after ${secs}s waiting for: $sql (last: $out)");
	return 0;
}

# ok() a query that must return 't'.
sub pp_check
{
	my ($node, $desc, $sql, $db) = @_;
	my ($ret, $stdout, $stderr) = $node->psql($db // 'postgres', $sql);
	return ok($ret == 0 && $stdout eq 't', $desc)
	  || diag("got: " . ($ret == 0 ? $stdout : $stderr));
}

# The worker's pid (the first worker's), or '' when none runs.
sub pp_worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pinpipe worker' ORDER BY pid LIMIT 1");
}

# Run a command, die on failure; returns its stdout.
sub pp_run
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err)
	  or croak "command failed: @cmd: $err";
	return $out;
}

# The lines of a JSONL file keyed for kcat -K'\t' by their ind (or index).
sub pp_keyed_lines
{
	my (@files) = @_;
	my $text = '';
	for my $f (@files)
	{
		open my $fh, '<', $f or croak "$f: $!";
		while (my $line = <$fh>)
		{
			$line =~ s/^(\{"(?:index|ind)": (-?[0-9]+))/$2\t$1/;
			$text .= $line;
		}
		close $fh;
	}
	return $text;
}

# Produce to a topic with kcat: pp_kcat_produce($bootstrap, $topic, $text or
# file => PATH, keyed => 1 (key each line by its ind)).
sub pp_kcat_produce
{
	my ($bootstrap, $topic, %opt) = @_;
	my $input = $opt{text};
	if (defined $opt{file})
	{
		$input = $opt{keyed} ? pp_keyed_lines($opt{file}) : slurp_file($opt{file});
	}
	my @cmd = ('kcat', '-b', $bootstrap, '-P', '-t', $topic);
	push @cmd, '-K', "\t" if $opt{keyed} || $opt{key_tab};
	push @cmd, @{ $opt{args} } if $opt{args};
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', \$input, '>', \$out, '2>', \$err)
	  or croak "kcat to $topic failed: $err";
	return;
}

# The exactly-once check: every message of the topics PREFIX.* (TOTAL in all,
# over all their sources) is stored exactly once as a raw row or a dead
# letter (not replayed: a replayed one is a raw row), none is missing, and the
# stored next offsets account for every message. Each (topic, source,
# partition) must hold offsets 0 to its stored next offset - 1, each once (a
# source is one incarnation of a topic: a recreated topic, or another
# cluster, starts at offset 0 again).
sub pp_check_complete
{
	my ($node, $prefix, $total, $secs) = @_;
	pp_wait_for($node,
		"SELECT coalesce(sum(next_offset), 0) = $total FROM pinpipe.offsets WHERE topic LIKE '$prefix.%'",
		$secs // 180);
	pp_check($node, "every produced message consumed: stored offsets sum to $total",
		"SELECT sum(next_offset) = $total FROM pinpipe.offsets WHERE topic LIKE '$prefix.%'");
	pp_check(
		$node,
		"every (source, partition, offset) is in raw or dead_letters exactly once, none missing",
		"WITH stored AS (
		     SELECT s.topic, s.id AS source, r.kafka_partition, r.kafka_offset
		       FROM pinpipe.pin_raw r JOIN pinpipe.sources s ON s.id = r.kafka_source AND s.topic = '$prefix.pin'
		     UNION ALL SELECT s.topic, s.id, r.kafka_partition, r.kafka_offset
		       FROM pinpipe.geo_raw r JOIN pinpipe.sources s ON s.id = r.kafka_source AND s.topic = '$prefix.geo'
		     UNION ALL SELECT s.topic, s.id, r.kafka_partition, r.kafka_offset
		       FROM pinpipe.user_raw r JOIN pinpipe.sources s ON s.id = r.kafka_source AND s.topic = '$prefix.user'
		     UNION ALL SELECT topic, source, kafka_partition, kafka_offset FROM pinpipe.dead_letters
		               WHERE topic LIKE '$prefix.%' AND replayed_at IS NULL),
		  per AS (SELECT topic, source, kafka_partition, count(*) n, count(DISTINCT kafka_offset) d,
		                 min(kafka_offset) lo, max(kafka_offset) hi FROM stored GROUP BY 1, 2, 3)
		 SELECT bool_and(n = d AND n = o.next_offset AND lo = 0 AND hi = o.next_offset - 1)
		        AND sum(n) = $total
		        AND (SELECT count(*) FROM per) = count(*)
		   FROM per JOIN pinpipe.offsets o USING (topic, source, kafka_partition)");
	return;
}

# A node whose restart is a stop and a start: "pg_ctl restart" starts the
# postmaster from postmaster.opts, with the path of the real binary, which
# under test/run.sh --sanitize bypasses the tree's postgres wrapper (the one
# that preloads the sanitizer runtimes).
package PinPipe::Test::Node;

use strict;
use warnings;
use parent -norequire, 'PostgreSQL::Test::Cluster';

sub restart
{
	my ($self, %params) = @_;
	$self->stop('fast');
	return $self->start(%params);
}

package PinPipe::Test::Broker;

use strict;
use warnings;
use Carp;
use File::Temp qw(tempdir);
use Time::HiRes qw(usleep);

# Start pinpipe-broker: PinPipe::Test::Broker->new(partitions => N,
# prefix => P, args => [more options]). Stopped when the object goes away.
sub new
{
	my ($class, %opt) = @_;
	my $dir = tempdir('pinpipe-broker-XXXXXX', TMPDIR => 1, CLEANUP => 1);
	my @cmd = (PinPipe::Test::pp_tool('pinpipe-broker'),
		'--quiet', '--bootstrap-file', "$dir/bootstrap", '--control', "$dir/control");
	push @cmd, '--partitions', $opt{partitions} if defined $opt{partitions};
	push @cmd, '--prefix', $opt{prefix} if defined $opt{prefix};
	push @cmd, @{ $opt{args} } if $opt{args};
	my $self = bless { dir => $dir, cmd => \@cmd }, $class;
	$self->start;
	return $self;
}

# (Re)start the broker process with the same options.
sub start
{
	my ($self) = @_;
	my $dir = $self->{dir};
	unlink "$dir/bootstrap", "$dir/control";
	my $pid = fork // croak "fork: $!";
	if ($pid == 0)
	{
		open STDOUT, '>>', "$dir/stdout";
		open STDERR, '>>', "$dir/stderr";
		exec @{ $self->{cmd} } or die "exec: $!";
	}
	$self->{pid} = $pid;
	for (1 .. 200)
	{
		last if -s "$dir/bootstrap" && -p "$dir/control";
		usleep(50_000);
	}
	open my $fh, '<', "$dir/bootstrap"
	  or croak "pinpipe-broker did not start: " . PostgreSQL::Test::Utils::slurp_file("$dir/stderr");
	chomp(my $b = <$fh>);
	close $fh;
	$self->{bootstrap} = $b;
	return $self;
}

sub bootstrap { return $_[0]{bootstrap}; }
sub pid       { return $_[0]{pid}; }
sub dir       { return $_[0]{dir}; }

# Send a command to the control FIFO (fault injection; see pinpipe-broker --help).
sub ctl
{
	my ($self, $command) = @_;
	local $SIG{ALRM} = sub { croak "broker control FIFO did not open" };
	alarm 5;
	open my $fh, '>', "$self->{dir}/control" or croak "control: $!";
	print $fh "$command\n";
	close $fh;
	alarm 0;
	return;
}

# Stop the broker (SIGTERM, or the given signal) and wait for it.
sub stop
{
	my ($self, $sig) = @_;
	return unless $self->{pid};
	kill $sig // 'TERM', $self->{pid};
	waitpid $self->{pid}, 0;
	delete $self->{pid};
	return;
}

sub DESTROY { my ($self) = @_; local $?; $self->stop; }

1;
