# Secrets in pinpipe.kafka_config never appear in the server log (PostgreSQL
# logs changed and refused setting values, and statements), in pg_settings
# for non-superusers, in pinpipe.status, or in errors.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;

my $marker = 'S3cr3t-' . int(rand(1e9)) . int(rand(1e9));

my $broker = PinPipe::Test::Broker->new(partitions => 1, prefix => 'sec');
my $node = pp_node('secrets');
$node->safe_psql('postgres', "ALTER SYSTEM SET log_statement = 'all'");
# a good configuration with a password, applied by reload while consuming
pp_set($node, 'pinpipe.brokers' => $broker->bootstrap, 'pinpipe.topic_prefix' => 'sec',
	'pinpipe.kafka_config' => "client.rack=r1,sasl.username=pinpipe,sasl.password=$marker");

# a refused one (an unknown property next to the password)
my ($ret, $out, $err) = $node->psql('postgres',
	"ALTER SYSTEM SET pinpipe.kafka_config = 'sasl.password=$marker,no.such.property=1'");
ok($ret != 0 && "$out$err" !~ /\Q$marker\E/ && $err =~ /no\.such\.property/,
	"the refused value's error names the property, not the secret")
  or diag("got: $out$err");
($ret, $out, $err) = $node->psql('postgres',
	"ALTER SYSTEM SET pinpipe.kafka_config = 'sasl.mechanism=NOPE,sasl.password=$marker'");
ok("$out$err" !~ /\Q$marker\E/, 'a refused value is not echoed') or diag("got: $out$err");

pp_kcat_produce($broker->bootstrap, 'sec.pin', key_tab => 1, text => qq(1\t{"index": 1}\n));
pp_wait_for($node, 'SELECT count(*) = 1 FROM pinpipe.pin_raw', 30);
pp_check($node, 'the worker consumes with the configuration', 'SELECT count(*) = 1 FROM pinpipe.pin_raw');

$node->safe_psql('postgres',
	'CREATE ROLE pinpipe_secret_reader LOGIN; GRANT pinpipe_admin TO pinpipe_secret_reader');
($ret, $out, $err) = $node->psql(
	'postgres',
	"SELECT name, setting FROM pg_settings;
	 SELECT s::text FROM pinpipe.status s;
	 SHOW pinpipe.kafka_config;",
	on_error_stop => 0,
	extra_params => [ '-U', 'pinpipe_secret_reader' ]);
ok("$out$err" !~ /\Q$marker\E/ && $out =~ /pinpipe\.brokers/ && $out =~ /sec\.pin/,
	'not in pg_settings or pinpipe.status for a pinpipe_admin member')
  or diag("visible to a non-superuser: $out$err");
$node->safe_psql('postgres', 'DROP ROLE pinpipe_secret_reader');
sleep 1;

my $log = slurp_file($node->logfile);
my @leaks = grep { /\Q$marker\E/ } split /\n/, $log;
my $mentions = () = $log =~ /pinpipe\.kafka_config/g;
ok(!@leaks, "the secret is not in the server log ($mentions mentions of the setting)")
  or diag("the secret is in the server log:\n" . join("\n", @leaks[ 0 .. ($#leaks < 4 ? $#leaks : 4) ]));
ok($mentions >= 3, 'the server log did record the statements that set it (log_statement = all)');

done_testing();
