# pinpipe-dashboard in a real browser: headless Chromium (Debian's), driven
# by puppeteer-core (installed from npm into a temporary directory), loads
# the page from a cluster that ingested the sample rows through the broker.
# The tables on the page equal the SQL functions' rows, for the default and
# for changed controls; every chart is drawn; the page follows new messages
# without a reload; values from messages are text, never markup; every
# response has a Content-Security-Policy; bad input gets 400 with a reason;
# a role with only pinpipe_reader works and one without it is told what to
# grant; the page says when the database is down and recovers; the ingest
# history the worker writes once a minute reaches the charts and survives a
# restart of the dashboard. Screenshots at laptop and phone width are saved
# in the test's output directory.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PinPipe::Test;
use IPC::Run;
use JSON::PP;
use File::Temp qw(tempdir);
use Time::HiRes qw(usleep);
use Encode qw(decode);

my $tmp = tempdir('pinpipe-dashboard-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $outdir = $ENV{TESTDIR} // $tmp;
my $json = JSON::PP->new->utf8;

# ---- the data: the sample rows, and hostile values ----
my $broker = PinPipe::Test::Broker->new(partitions => 3, prefix => 'dash');
for my $t (qw(pin geo user))
{
	pp_kcat_produce($broker->bootstrap, "dash.$t", file => pp_data($t), keyed => 1);
}
my $evil_poster = '<script>alert("poster")</script>';
my $evil_country = '<img src=x onerror=alert(2)>';
my $evil_title = '<img src=x onerror=alert(1)>';
my $pin = {
	index => 900001, unique_id => '5b3c6f5e-2a3b-4c5d-8e9f-0a1b2c3d4e5f', title => $evil_title,
	description => 'd', poster_name => $evil_poster, follower_count => '99M', tag_list => 't',
	is_image_or_video => 'image', image_src => 'x', downloaded => 1,
	save_location => 'Local save in /data/art', category => '<b>art</b>' };
pp_kcat_produce($broker->bootstrap, 'dash.pin', key_tab => 1, text => "900001\t" . encode_json($pin) . "\n");
pp_kcat_produce($broker->bootstrap, 'dash.geo', key_tab => 1,
	text => "900001\t" . encode_json({ ind => 900001, timestamp => '2020-05-05 10:00:00', latitude => 1.5,
		longitude => 2.5, country => $evil_country }) . "\n");
pp_kcat_produce($broker->bootstrap, 'dash.user', key_tab => 1,
	text => "900001\t" . encode_json({ ind => 900001, first_name => 'Eve', last_name => '<i>l</i>', age => 30,
		date_joined => '2016-01-01 00:00:00' }) . "\n");
# dead letters whose payload is markup: not JSON, and a pin without its join key
pp_kcat_produce($broker->bootstrap, 'dash.pin', text => "not json $evil_title\n");
pp_kcat_produce($broker->bootstrap, 'dash.pin', text => encode_json({ title => $evil_title }) . "\n");
my $total = 2482 + 3 + 2 * (11154 + 1);

my $node = pp_node('dashboard', brokers => $broker->bootstrap, prefix => 'dash');
pp_check_complete($node, 'dash', $total);
$node->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
GRANT pinpipe_reader TO alice;
CREATE ROLE mallory LOGIN;
});

# ---- tools ----

# every process the test starts is stopped, whatever happens
my @procs;
END { eval { $_->kill_kill } for grep { defined } @procs; }

sub conninfo
{
	my ($user) = @_;
	return 'host=' . $node->host . ' port=' . $node->port . " dbname=postgres user=$user";
}

# Start pinpipe-dashboard; returns (handle, base URL).
sub start_dashboard
{
	my (@args) = @_;
	my ($in, $out, $err) = ('', '', '');
	my $t = IPC::Run::timeout(30);
	my $h = IPC::Run::start([ pp_tool('pinpipe-dashboard'), @args ], \$in, \$out, \$err, $t);
	push @procs, $h;
	$h->pump until $out =~ /\n/;
	$t->reset;
	like($out, qr{^dashboard at http://127\.0\.0\.1:\d+/\n\z}, 'prints exactly one ready line') or diag($err);
	my ($url) = $out =~ m{^dashboard at (http://\S+/)};
	return ($h, $url);
}

# A request with curl: (status, headers (lower-case names), body).
sub http
{
	my ($url, @opts) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'curl', '-sS', '-i', '--max-time', '20', @opts, $url ], '>', \$out, '2>', \$err)
	  or return (0, {}, $err);
	my ($head, $body) = split /\r\n\r\n/, $out, 2;
	my ($status) = $head =~ m{^HTTP/\S+ (\d+)};
	my %h;
	for (split /\r\n/, $head) { $h{ lc $1 } = $2 if /^([^:]+):\s*(.*)$/; }
	return ($status, \%h, $body // '');
}

my $csp_re = qr/default-src 'none'; script-src 'self'; style-src 'self'/;

# The rows of a SQL call as lines of |-separated values (NULL as '').
sub sql_rows
{
	my ($call, $user) = @_;
	my $out = decode('UTF-8',
		$node->safe_psql('postgres', ($user ? "SET ROLE $user; " : '') . "SELECT * FROM pinpipe.$call"));
	return [ grep { $_ ne '' } split /\n/, $out ];
}

# The same from rows of the JSON API or of the page.
sub api_rows
{
	my ($doc) = @_;
	return [ map { my $r = $_; join('|', map { $r->{$_} // '' } @{ $doc->{columns} }) } @{ $doc->{rows} } ];
}

# ---- the browser ----

my $ppt = "$tmp/puppeteer";
my $npm_cache = '/tmp/pinpipe-npm-cache-' . getpwuid($<);
my ($nout, $nerr) = ('', '');
ok( IPC::Run::run(
		[ 'npm', 'install', '--prefix', $ppt, '--no-audit', '--no-fund', '--loglevel=error',
			'puppeteer-core@23.11.1' ],
		init => sub { $ENV{HOME} = $tmp; $ENV{npm_config_cache} = $npm_cache; },
		'>', \$nout, '2>', \$nerr),
	'puppeteer-core installed from npm into a temporary directory') or diag($nerr);

my ($bin, $bout, $berr) = ('', '', '');
my $btimer = IPC::Run::timeout(120);
my $browser = IPC::Run::start([ 'node', pp_top() . '/test/tools/dashboard-browser.js' ],
	init => sub { $ENV{HOME} = $tmp; $ENV{NODE_PATH} = "$ppt/node_modules"; },
	\$bin, \$bout, \$berr, $btimer);
push @procs, $browser;

# Send one command to the browser; its JSON answer.
sub browser
{
	my ($cmd, $secs) = @_;
	$btimer->start($secs // 90);
	$bout = '';
	$bin .= "$cmd\n";
	$browser->pump until $bout =~ /\n/;
	my $r = eval { $json->decode($bout) } // { ok => 0, error => "bad answer: $bout $berr" };
	diag("browser: $cmd: $r->{error}") unless $r->{ok};
	return $r;
}

# A page table's cells: the raw values, after checking the shown text is the
# value (numbers shown with thousands separators, NULL as a dash).
sub page_rows
{
	my ($state, $id) = @_;
	my $t = $state->{tables}{$id} or return [];
	my @rows;
	for my $r (@{ $t->{rows} })
	{
		push @rows, join('|', map { my $v = $_; $v = '' if $v eq '–'; $v =~ s/(?<=\d),(?=\d{3})//g; $v } @$r);
	}
	return \@rows;
}

my @answers = (
	[ 'popular_category_by_country', '' ],
	[ 'category_count_by_year', 'post' ],
	[ 'most_followed_by_country', '' ],
	[ 'most_followed_country', '' ],
	[ 'popular_category_by_age_group', '' ],
	[ 'median_followers_by_age_group', 'm' ],
	[ 'users_joined_by_year', 'join' ],
	[ 'median_followers_by_join_year', 'join,m' ],
	[ 'median_followers_by_age_group_and_join_year', 'join,m' ]);

# The SQL call of an answer for the page's controls.
sub call_for
{
	my ($fn, $uses, $c) = @_;
	my @a;
	push @a, "from_year => $c->{post_from}", "to_year => $c->{post_to}" if $uses =~ /post/;
	push @a, "from_year => $c->{join_from}", "to_year => $c->{join_to}" if $uses =~ /join/;
	push @a, "method => '$c->{method}'" if $uses =~ /m/;
	return "$fn(" . join(', ', @a) . ')';
}

sub check_answers
{
	my ($state, $c, $what) = @_;
	for my $a (@answers)
	{
		my ($fn, $uses) = @$a;
		my $call = call_for($fn, $uses, $c);
		my $want = sql_rows($call);
		ok(@$want > 0, "$what: $call has rows");
		is_deeply(page_rows($state, "table-$fn"), $want, "$what: the page's table of $fn equals $call");
		my $chart = $state->{charts}{"chart-$fn"};
		ok($chart && $chart->{rendered} && $chart->{points} > 0 && $chart->{width} > 100,
			"$what: the chart of $fn is drawn");
	}
}

# ---- the dashboard as a reader ----
my ($dash, $url) = start_dashboard('--db', conninfo('alice'), '--listen', '127.0.0.1:0', '--refresh', '2');

# the JSON API with curl
for my $a (@answers)
{
	my ($fn, $uses) = @$a;
	my ($st, $h, $body) = http("${url}api/answers/$fn");
	is($st, 200, "GET /api/answers/$fn");
	like($h->{'content-security-policy'} // '', $csp_re, "CSP on /api/answers/$fn");
	is_deeply(api_rows($json->decode($body)), sql_rows("$fn()", 'alice'), "/api/answers/$fn equals pinpipe.$fn()");
}
{
	my ($st, $h, $body) = http("${url}api/answers/category_count_by_year?from_year=2019&to_year=2020");
	is_deeply(api_rows($json->decode($body)), sql_rows('category_count_by_year(2019, 2020)'),
		'/api/answers with a year range equals the function with it');
	($st, $h, $body) = http("${url}api/answers/median_followers_by_join_year?method=lower&from_year=2016");
	is_deeply(api_rows($json->decode($body)),
		sql_rows("median_followers_by_join_year(from_year => 2016, method => 'lower')"),
		'/api/answers with method=lower equals the function with it');
}
for my $bad (
	[ 'api/answers/drop_table', qr/unknown function/ ],
	[ 'api/answers/users_joined_by_year?from_year=abc', qr/from_year must be an integer/ ],
	[ 'api/answers/users_joined_by_year?to_year=2020x', qr/to_year must be an integer/ ],
	[ 'api/answers/median_followers_by_age_group?method=mean', qr/method must be exact or lower/ ],
	[ 'api/answers/most_followed_country?from_year=2019', qr/takes no year range/ ],
	[ 'api/answers/users_joined_by_year?limit=1', qr/unknown argument/ ],
	[ 'api/history?minutes=-5', qr/minutes must be an integer/ ])
{
	my ($st, $h, $body) = http($url . $bad->[0]);
	is($st, 400, "400 for $bad->[0]");
	like($json->decode($body)->{error}, $bad->[1], "with its reason for $bad->[0]");
	like($h->{'content-security-policy'} // '', $csp_re, "CSP on the 400 of $bad->[0]");
}
for my $path ('', 'static/dashboard.js', 'static/dashboard.css', 'static/chart.js', 'api/status', 'api/config',
	'api/history?minutes=60', 'nope')
{
	my ($st, $h) = http("$url$path");
	like($h->{'content-security-policy'} // '', $csp_re, "CSP on /$path ($st)");
}
{
	my ($st, $h, $body) = http("${url}api/status");
	my $s = $json->decode($body);
	is($st, 200, '/api/status as a reader');
	is(scalar(@{ $s->{workers} }), 3, '/api/status lists the worker per topic');
	is($s->{dead_letters}{total}, 2, '/api/status counts the dead letters');
	($st) = http("${url}api/pause", '-X', 'POST', '-H', 'X-Pinpipe-Control: 1');
	is($st, 403, 'read-only by default: POST /api/pause refused');
	like((http($url))[2], qr/<script src="\/static\/dashboard.js"/, 'the page loads its script from a file');
	unlike((http($url))[2], qr/<script>|\son\w+=/, 'no inline script or handler in the page');
}

# the page in the browser
my $r = browser("goto $url 1366 900", 120);
ok($r->{ok}, 'the page loads in Chromium') or diag(explain($r));
like($r->{headers}{'content-security-policy'} // '', $csp_re, 'the page is served with its CSP');
my $state = $r->{state};
is($state->{live}, 'live', 'the page says it is live');
like($state->{readAt}, qr/data read at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, 'the page says when the data was read');
ok(!$state->{controlsShown}, 'no pause/resume without --allow-control');
my %defaults = (post_from => 2018, post_to => 2022, join_from => 2015, join_to => 2020, method => 'exact');
check_answers($state, \%defaults, 'defaults');
ok($state->{charts}{'chart-hour'}{rendered} && $state->{charts}{'chart-day'}{rendered}, 'the history charts are drawn');
is(scalar(@{ $state->{tables}{workers}{rows} }), 3, 'the workers table has a row per topic');

# escaping: markup from messages shows as text
my ($evil_row) = grep { $_->[0] eq $evil_country } @{ $state->{tables}{'table-most_followed_by_country'}{rows} };
is_deeply($evil_row, [ $evil_country, $evil_poster, '99,000,000' ], 'a poster and country made of markup show as text');
ok((grep { $_->[5] =~ /\Q$evil_title\E/ } @{ $state->{tables}{'dead-letters'}{rows} }) == 2,
	'dead-letter payloads with markup show as text');
is($state->{images}, 0, 'no <img> element came from a value');
$r = browser('state');
ok(!(grep { /dialog|pageerror|Content Security Policy|Refused/ } @{ $r->{console} }),
	'no alert ran, no script error, no CSP violation') or diag(explain($r->{console}));

# changed controls
browser('set post_from 2019');
browser('set post_to 2020');
browser('set join_from 2016');
$r = browser('set method lower');
check_answers($r->{state}, { %defaults, post_from => 2019, post_to => 2020, join_from => 2016, method => 'lower' },
	'changed controls');
like($r->{state}{hash}, qr/post_from=2019/, 'the controls are kept in the address');
browser('set method exact');

# the page follows new messages without a reload
my $marker = $r->{state}{marker};
my $new_pin = { %$pin, index => 900002, poster_name => 'Newcomer', follower_count => '1k', category => 'travel' };
pp_kcat_produce($broker->bootstrap, 'dash.pin', key_tab => 1, text => "900002\t" . encode_json($new_pin) . "\n");
pp_kcat_produce($broker->bootstrap, 'dash.geo', key_tab => 1,
	text => "900002\t" . encode_json({ ind => 900002, timestamp => '2021-01-01 00:00:00', latitude => 1,
		longitude => 1, country => 'Atlantis' }) . "\n");
$r = browser('wait-text Atlantis 60', 90);
ok($r->{ok}, 'a country from a new message appears on the page');
is($r->{state}{marker}, $marker, 'without a reload');
is_deeply(page_rows($r->{state}, 'table-popular_category_by_country'), sql_rows('popular_category_by_country()'),
	'the updated table equals the function');

# screenshots at a laptop's and a phone's width
ok(browser("screenshot $outdir/dashboard-laptop.png 1366 900")->{ok}, "screenshot $outdir/dashboard-laptop.png");
$r = browser("goto $url 390 844");
ok($r->{state}{scrollWidth} <= $r->{state}{clientWidth} + 1, 'no sideways scrolling at a phone width')
  or diag("$r->{state}{scrollWidth} > $r->{state}{clientWidth}: @{ $r->{state}{widest} }");
ok(browser("screenshot $outdir/dashboard-phone.png 390 844")->{ok}, "screenshot $outdir/dashboard-phone.png");

# ---- a role without pinpipe_reader is told what to grant ----
my ($dash2, $url2) = start_dashboard('--db', conninfo('mallory'), '--listen', '127.0.0.1:0', '--quiet');
my ($st2, $h2, $body2) = http("${url2}api/answers/popular_category_by_country");
is($st2, 403, 'the analytics API without pinpipe_reader: 403');
like($json->decode($body2)->{hint}, qr/GRANT pinpipe_reader TO mallory/, 'with the errhint of the function');
($st2, $h2, $body2) = http("${url2}api/status");
is($st2, 403, 'the status API without pinpipe_reader: 403');
like($json->decode($body2)->{hint}, qr/GRANT pinpipe_reader TO "mallory"/, 'with the role to grant');
$r = browser("goto $url2 1366 900");
is($r->{state}{live}, 'denied', 'the page says permission is denied');
like($r->{state}{banner}{hint} // '', qr/GRANT pinpipe_reader TO "?mallory"?/, 'and what to grant');
$node->safe_psql('postgres', 'GRANT pinpipe_reader TO mallory');
$r = browser('wait-state live 30');
ok($r->{ok}, 'granted pinpipe_reader, the page works');
$dash2->kill_kill;

# ---- the history the worker writes once a minute ----
# (the minute in progress is written when it ends; a stop loses at most it)
pp_wait_for($node, "SELECT sum(messages) = $total + 2 FROM pinpipe.ingest_history", 150);
is( $node->safe_psql('postgres',
		"SELECT sum(messages) = $total + 2 AND sum(dead_letters) = 2 FROM pinpipe.ingest_history"),
	't', 'ingest_history counts every message and dead letter once');
is($node->safe_psql('postgres',
		"SELECT count(*) = count(DISTINCT (worker, topic, minute)) AND bool_and(batches > 0) FROM pinpipe.ingest_history"),
	't', 'one row per worker, topic and minute');
$dash->kill_kill;
($dash, $url) = start_dashboard('--db', conninfo('alice'), '--listen', '127.0.0.1:0', '--quiet');
my $hist = $json->decode((http("${url}api/history?minutes=60"))[2]);
is( eval { my $s = 0; $s += $_->{messages} for @{ $hist->{rows} }; $s }, $total + 2,
	'a restarted dashboard serves the whole history');
$r = browser("goto $url 1366 900");
ok($r->{state}{charts}{'chart-hour'}{points} > 0, 'the hour chart is drawn from it');
ok(browser("screenshot $outdir/dashboard.png 1366 900")->{ok}, "screenshot $outdir/dashboard.png");

# the database down, then back
$node->stop('fast');
$r = browser('wait-state down 30');
ok($r->{ok}, 'the page says the database is down');
like($r->{state}{banner}{title} // '', qr/database is unreachable/, 'in its banner');
is(scalar(@{ $r->{state}{tables}{'table-users_joined_by_year'}{rows} }) > 0, 1, 'and keeps the last figures');
my ($st, $h) = http("${url}api/status");
is($st, 503, '/api/status is 503 while the database is down');
like($h->{'content-security-policy'} // '', $csp_re, 'with its CSP');
$node->start;
$r = browser('wait-state live 60');
ok($r->{ok}, 'the page recovers when the database is back');
ok(!$r->{state}{banner}, 'and its banner is gone');


browser('quit');
$browser->finish;
$dash->kill_kill;
done_testing();
