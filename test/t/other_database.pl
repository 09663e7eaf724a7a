# The extension in a database other than pinpipe.database (issue 13,
# section 3): CREATE EXTENSION says plainly where the workers write, the
# status views there name that database, and pause()/resume() there are
# refused with a hint, leaving the worker consuming. In the workers' own
# database the NOTICE names it, and pause()/resume() work.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $prefix = 'od';
my $broker = PinPipe::Test::Broker->new(partitions => 2, prefix => $prefix);
my $total = 0;
for my $t (qw(pin geo user))
{
	pp_kcat_produce($broker->bootstrap, "$prefix.$t", file => pp_data($t), keyed => 1);
}
for my $t (qw(pin geo user))
{
	$total += () = PostgreSQL::Test::Utils::slurp_file(pp_data($t)) =~ /\n/g;
}

my $node = pp_node('other_db', brokers => $broker->bootstrap, prefix => $prefix, extension => 0);

# in the workers' database: the NOTICE names it
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'CREATE EXTENSION pinpipe');
is($ret, 0, 'CREATE EXTENSION in postgres');
like($stderr, qr/NOTICE:  the pinpipe workers write to this database, "postgres"/,
	'the NOTICE names the database the workers write to');
pp_check_complete($node, $prefix, $total);

# in another database: the NOTICE says plainly that the workers write elsewhere
$node->safe_psql('postgres', 'CREATE DATABASE other');
($ret, $stdout, $stderr) = $node->psql('other', 'CREATE EXTENSION pinpipe');
is($ret, 0, 'CREATE EXTENSION in another database succeeds');
like($stderr, qr/NOTICE:  the pinpipe workers write to database "postgres", not to this database "other"/,
	'the NOTICE says the workers write to another database');
like($stderr, qr/DETAIL:  The pinpipe tables of this database stay empty/, 'what that means');
like($stderr, qr/HINT:  Use the extension in database "postgres", or set pinpipe.database = 'other' and restart the server/,
	'what to do');

# its status views name the workers' database
pp_check($node, "status in the other database shows the workers' database",
	"SELECT count(*) = 3 AND bool_and(database = 'postgres' AND messages > 0) FROM pinpipe.status", 'other');
pp_check($node, 'partition_lag too',
	"SELECT count(*) = 6 AND bool_and(database = 'postgres') FROM pinpipe.partition_lag", 'other');
pp_check($node, 'while its own tables are empty',
	'SELECT (SELECT count(*) FROM pinpipe.pin_raw) = 0 AND (SELECT count(*) FROM pinpipe.offsets) = 0', 'other');

# pause() and resume() there are refused, with a hint
for my $f ('pause()', "pause('1 s')", 'resume()')
{
	($ret, $stdout, $stderr) = $node->psql('other', "SELECT pinpipe.$f");
	isnt($ret, 0, "$f refused in another database");
	like($stderr, qr/ERROR:  the pinpipe workers write to database "postgres", not to "other"/, "$f: the error says why");
	like($stderr, qr/HINT:  Connect to database "postgres" to (pause|resume) the workers/, "$f: the hint says where");
}
pp_check($node, 'the worker was not paused', "SELECT bool_and(state = 'caught up') FROM pinpipe.status");

# a pinpipe_admin member is refused the same way
$node->safe_psql('postgres', 'CREATE ROLE ops LOGIN IN ROLE pinpipe_admin');
($ret, $stdout, $stderr) = $node->psql('other', 'SELECT pinpipe.pause()', extra_params => [ '-U', 'ops' ]);
like($stderr, qr/ERROR:  the pinpipe workers write to database "postgres"/, 'a pinpipe_admin member too');

# in the workers' database they work
is($node->safe_psql('postgres', "SELECT pinpipe.pause(); SELECT bool_and(state = 'paused') FROM pinpipe.status"),
	"\nt", "pause() in the workers' database");
pp_check($node, "the other database's status shows it paused",
	"SELECT bool_and(state = 'paused') FROM pinpipe.status", 'other');
$node->safe_psql('postgres', 'SELECT pinpipe.resume()');
pp_wait_for($node, "SELECT bool_and(state = 'caught up') FROM pinpipe.status", 60);

# new messages still go to the workers' database only
pp_kcat_produce($broker->bootstrap, "$prefix.pin", text => qq({"index": 900001, "title": "late"}\n));
$total += 1;
pp_check_complete($node, $prefix, $total);
pp_check($node, 'the other database still has no rows', 'SELECT count(*) = 0 FROM pinpipe.pin_raw', 'other');

done_testing();
