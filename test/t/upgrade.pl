# The upgrade from 0.1: the extension installed from the frozen 0.1 script
# ingests through the worker, ALTER EXTENSION pinpipe UPDATE runs while the
# worker runs and messages are produced, and then
#   - the rows, offsets and dead letters stored before the update are intact,
#   - every message (before, during and after it) is stored exactly once,
#   - the clean tables and the analytics caches agree with the raw rows,
#   - the updated catalog equals that of a fresh install of the current
#     version (test/sql/catalog_snapshot.sql, in a second database), and the
#     comparison sees a difference when there is one.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use PinPipe::Test;

my $prefix = 'upg';
my $old = '0.1';
my $new = PostgreSQL::Test::Utils::slurp_file(pp_top() . '/pinpipe.control') =~ /^default_version = '([^']+)'/m
  ? $1
  : die "no default_version in pinpipe.control";

# The sample rows in three parts: before, during and after the update.
my %parts;
for my $t (qw(pin geo user))
{
	my @lines = split /(?<=\n)/, pp_keyed_lines(pp_data($t));
	my $third = int(@lines / 3);
	$parts{$t} = [
		join('', @lines[ 0 .. $third - 1 ]),
		join('', @lines[ $third .. 2 * $third - 1 ]),
		join('', @lines[ 2 * $third .. $#lines ])
	];
}
# sample rows per table, and messages produced so far (all topics)
my @sample_total = map { scalar(() = join('', @{ $parts{$_} }) =~ /\n/g) } qw(pin geo user);
my $total = 0;

my $broker = PinPipe::Test::Broker->new(partitions => 3, prefix => $prefix);

# part $i of every topic, and $bad messages the worker must refuse (dead letters)
sub produce
{
	my ($i, $bad) = @_;
	for my $t (qw(pin geo user))
	{
		pp_kcat_produce($broker->bootstrap, "$prefix.$t", text => $parts{$t}[$i], key_tab => 1);
		$total += () = $parts{$t}[$i] =~ /\n/g;
	}
	pp_kcat_produce($broker->bootstrap, "$prefix.pin",
		text => join('', map { qq({"index": "not a number $_"}\n) } 1 .. $bad));
	$total += $bad;
	return;
}

sub offsets_sum
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(sum(next_offset), 0) FROM pinpipe.offsets WHERE topic LIKE '$prefix.%'");
}

# 1. version 0.1, from the frozen script, ingesting part 0
produce(0, 5);
my $part0 = $total;
my $node = pp_node('upgrade', brokers => $broker->bootstrap, prefix => $prefix, version => $old);
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'pinpipe'"),
	$old, "installed version $old");
pp_wait_for($node, "SELECT coalesce(sum(next_offset), 0) = $part0 FROM pinpipe.offsets WHERE topic LIKE '$prefix.%'",
	180);
pp_check($node, 'dead letters of part 0 stored', 'SELECT count(*) = 5 FROM pinpipe.dead_letters');

# What the update must keep: the rows, offsets and dead letters stored so far.
$node->safe_psql(
	'postgres', q{
CREATE TABLE public.kept_offsets AS SELECT * FROM pinpipe.offsets;
CREATE TABLE public.kept_pin AS SELECT * FROM pinpipe.pin_raw;
CREATE TABLE public.kept_geo AS SELECT * FROM pinpipe.geo_raw;
CREATE TABLE public.kept_user AS SELECT * FROM pinpipe.user_raw;
CREATE TABLE public.kept_dead AS SELECT * FROM pinpipe.dead_letters;
});
my $worker_pid = pp_worker_pid($node);
ok($worker_pid, "the worker runs (pid $worker_pid)");

# 2. ALTER EXTENSION pinpipe UPDATE in a transaction held open for a few
# seconds, while part 1 is produced and the worker consumes it.
my ($alter_out, $alter_err) = ('', '');
my $alter = IPC::Run::start(
	[
		'psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		'-c', "BEGIN; ALTER EXTENSION pinpipe UPDATE; SELECT pg_sleep(3); COMMIT;"
	],
	'>', \$alter_out, '2>', \$alter_err);
pp_wait_for($node,
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'BEGIN; ALTER EXTENSION pinpipe UPDATE;%' AND state = 'active'",
	30);
produce(1, 3);
my $during = offsets_sum($node);
$alter->finish;
is($?, 0, 'ALTER EXTENSION pinpipe UPDATE succeeded') or diag($alter_err);
note("messages stored while the update's transaction was open: " . ($during - $part0));
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'pinpipe'"),
	$new, "updated to $new");

# 3. and after it, part 2
produce(2, 2);
pp_check_complete($node, $prefix, $total);
is(pp_worker_pid($node), $worker_pid, 'the same worker ran through the update');
pp_check($node, 'no worker error', 'SELECT bool_and(last_error IS NULL) FROM pinpipe.status');

# The state from before the update is intact (the columns 0.1 had), and its
# rows belong to the source the update made for their topic.
for my $t (qw(pin geo user))
{
	my $cols = $node->safe_psql('postgres',
		"SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
		  WHERE attrelid = 'public.kept_$t'::regclass AND attnum > 0 AND NOT attisdropped");
	my $rows = "SELECT r.* FROM pinpipe.${t}_raw r JOIN public.kept_offsets o
	                ON o.topic = '$prefix.$t' AND o.kafka_partition = r.kafka_partition
	               AND r.kafka_offset < o.next_offset
	              JOIN pinpipe.sources s ON s.id = r.kafka_source AND s.topic = '$prefix.$t'";
	pp_check($node, "$t raw rows from before the update unchanged",
		"SELECT NOT EXISTS (SELECT * FROM public.kept_$t EXCEPT ALL SELECT $cols FROM ($rows) r)
		    AND NOT EXISTS (SELECT $cols FROM ($rows) r EXCEPT ALL SELECT * FROM public.kept_$t)
		    AND (SELECT count(*) FROM public.kept_$t) > 0");
}
pp_check($node, 'dead letters from before the update unchanged',
	"SELECT NOT EXISTS (SELECT * FROM public.kept_dead EXCEPT ALL
	                    SELECT topic, kafka_partition, kafka_offset, kafka_timestamp, payload, error, received_at
	                      FROM pinpipe.dead_letters WHERE replayed_at IS NULL)
	    AND (SELECT count(*) FROM public.kept_dead) = 5");
pp_check($node, 'dead letters: 5 before, 3 during, 2 after the update', 'SELECT count(*) = 10 FROM pinpipe.dead_letters');
pp_check($node, 'one source per topic, made by the update, its cluster recorded by the worker',
	"SELECT count(*) = 3 AND bool_and(reason = 'first use' AND cluster_id LIKE 'mockCluster%')
	   FROM pinpipe.sources");
pp_check($node, 'offsets of every partition kept and moved on',
	"SELECT bool_and(n.next_offset > k.next_offset) AND count(*) = 9
	   FROM public.kept_offsets k JOIN pinpipe.offsets n USING (topic, kafka_partition)");
pp_check($node, 'raw rows = sample rows',
	"SELECT (SELECT count(*) FROM pinpipe.pin_raw) = $sample_total[0]
	    AND (SELECT count(*) FROM pinpipe.geo_raw) = $sample_total[1]
	    AND (SELECT count(*) FROM pinpipe.user_raw) = $sample_total[2]");

# The clean tables agree with the raw rows, the caches with the clean tables.
my $hash = "md5((SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.pin_clean c) ||
                (SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.geo_clean c) ||
                (SELECT string_agg(c::text, ',' ORDER BY ind) FROM pinpipe.user_clean c))";
my $clean = $node->safe_psql('postgres', "SELECT $hash");
$node->safe_psql('postgres', 'SELECT pinpipe.reclean()');
is($node->safe_psql('postgres', "SELECT $hash"), $clean, 'reclean() gives the clean tables the worker wrote');
pp_check($node, 'analytics caches equal their definitions',
	'SELECT count(*) > 0 AND bool_and(matches) FROM pinpipe.analytics_check()');

# 4. The catalog of the update equals a fresh install's.
my $snapshot_sql = PostgreSQL::Test::Utils::slurp_file(pp_top() . '/test/sql/catalog_snapshot.sql');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pinpipe');
is($node->safe_psql('fresh', "SELECT extversion FROM pg_extension WHERE extname = 'pinpipe'"),
	$new, "fresh install of $new");

sub snapshot { my ($db) = @_; return [ split /\n/, $node->safe_psql($db, $snapshot_sql) ]; }

# lines only in a / only in b
sub compare
{
	my ($a, $b) = @_;
	my (%in_a, %in_b);
	$in_a{$_}++ for @$a;
	$in_b{$_}++ for @$b;
	return ([ grep { !$in_b{$_} } @$a ], [ grep { !$in_a{$_} } @$b ]);
}

my $updated = snapshot('postgres');
my $fresh = snapshot('fresh');
cmp_ok(scalar @$fresh, '>', 1000, 'the snapshot lists the catalog (' . scalar(@$fresh) . ' lines)');
ok((grep { /^function\|pinpipe\.refresh\(\)\|security_definer\|true$/ } @$fresh),
	'the snapshot shows function attributes');
my ($only_updated, $only_fresh) = compare($updated, $fresh);
ok(!@$only_updated && !@$only_fresh && @$updated == @$fresh,
	"the catalog after ALTER EXTENSION UPDATE from $old equals a fresh install of $new")
  or diag(join("\n", 'only after the update:', @$only_updated[ 0 .. ($#$only_updated < 40 ? $#$only_updated : 39) ],
		'only in the fresh install:', @$only_fresh[ 0 .. ($#$only_fresh < 40 ? $#$only_fresh : 39) ]));

# The comparison is not blind: a missing default, a missing grant and a
# changed body in the fresh database each show.
$node->safe_psql(
	'fresh', q{
ALTER TABLE pinpipe.offsets ALTER COLUMN updated_at DROP DEFAULT;
REVOKE EXECUTE ON FUNCTION pinpipe.resume() FROM pinpipe_admin;
CREATE OR REPLACE FUNCTION pinpipe.age_group_order(age_group text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(array_position(ARRAY['18-24', '25-35', '36-50', '+50'], age_group), 6);
});
($only_updated, $only_fresh) = compare($updated, snapshot('fresh'));
my $diff = join("\n", @$only_updated, @$only_fresh);
like($diff, qr/^relation\|pinpipe\.offsets\|column 004 updated_at\|.*DEFAULT now\(\)/m, 'a missing default shows');
like($diff, qr/^function\|pinpipe\.resume\(\)\|acl\|/m, 'a missing grant shows');
like($diff, qr/^function\|pinpipe\.age_group_order\(pg_catalog\.text\)\|body\|/m, 'a changed body shows');

done_testing();
