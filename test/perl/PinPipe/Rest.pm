# PinPipe::Rest: the front door (src/bin/pinpipe-rest) in TAP tests: start and
# stop it, read its peak memory, and talk to it with curl.
#
#   my $rest = PinPipe::Rest->new(brokers => $broker->bootstrap, args => [...]);
#   my ($status, $body, $headers) = $rest->curl('POST', '/topics/t',
#       type => 'application/json', body => '{"records": ...}');
#   my $json = PinPipe::Rest::json($body);
package PinPipe::Rest;

use strict;
use warnings;

use Carp;
use IPC::Run;
use JSON::PP;
use PinPipe::Test;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);

# Start pinpipe-rest: brokers, listen (default 127.0.0.1:0), args => [more options].
sub new
{
	my ($class, %opt) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my @cmd = (pp_tool('pinpipe-rest'), '--brokers', $opt{brokers},
		'--listen', $opt{listen} // '127.0.0.1:0', @{ $opt{args} // [] });
	my $self = bless { dir => $dir, cmd => \@cmd }, $class;
	$self->start;
	return $self;
}

# (Re)start the process with the same options; on a restart, the same port.
sub start
{
	my ($self) = @_;
	my $dir = $self->{dir};
	if ($self->{port})
	{
		my @cmd = @{ $self->{cmd} };
		for my $i (0 .. $#cmd - 1)
		{
			$cmd[ $i + 1 ] = "127.0.0.1:$self->{port}" if $cmd[$i] eq '--listen';
		}
		$self->{cmd} = \@cmd;
	}
	unlink "$dir/stdout";
	my $pid = fork // croak "fork: $!";
	if ($pid == 0)
	{
		open STDOUT, '>', "$dir/stdout";
		open STDERR, '>>', "$dir/stderr";
		exec @{ $self->{cmd} } or die "exec: $!";
	}
	$self->{pid} = $pid;
	for (1 .. 400)
	{
		my $out = -e "$dir/stdout" ? slurp_file("$dir/stdout") : '';
		if ($out =~ m{^listening on (https?)://([^\s]+):(\d+)$}m)
		{
			($self->{scheme}, $self->{host}, $self->{port}) = ($1, $2, $3);
			$self->{url} = "$1://$2:$3";
			return $self;
		}
		croak "pinpipe-rest exited: " . $self->stderr if waitpid($pid, 1) == $pid;
		usleep(50_000);
	}
	croak "pinpipe-rest did not start: " . $self->stderr;
}

sub url    { return $_[0]{url}; }
sub port   { return $_[0]{port}; }
sub pid    { return $_[0]{pid}; }
sub dir    { return $_[0]{dir}; }
sub stderr { my $f = "$_[0]{dir}/stderr"; return -e $f ? slurp_file($f) : ''; }
sub stdout { my $f = "$_[0]{dir}/stdout"; return -e $f ? slurp_file($f) : ''; }

# Is the process still running (not a zombie)?
sub alive
{
	my ($self) = @_;
	return 0 unless $self->{pid};
	return 0 if waitpid($self->{pid}, 1) == $self->{pid};
	return kill(0, $self->{pid}) ? 1 : 0;
}

# Peak resident memory (VmHWM) in kB.
sub peak_rss_kb
{
	my ($self) = @_;
	my $s = slurp_file("/proc/$self->{pid}/status");
	return $s =~ /^VmHWM:\s+(\d+) kB/m ? $1 : -1;
}

# Stop with SIGTERM (or $sig) and return the exit status ($? >> 8; -signal if killed).
sub stop
{
	my ($self, $sig) = @_;
	return undef unless $self->{pid};
	kill $sig // 'TERM', $self->{pid};
	waitpid $self->{pid}, 0;
	my $st = $?;
	delete $self->{pid};
	return ($st & 127) ? -($st & 127) : ($st >> 8);
}

sub DESTROY { my ($self) = @_; local $?; $self->stop('KILL') if $self->{pid}; }

# One request with curl: ($status, $body, $headers). Options: type
# (Content-Type), body (bytes), headers => [...], args => [more curl args].
sub curl
{
	my ($self, $method, $path, %opt) = @_;
	my $dir = $self->{dir};
	my @cmd = ('curl', '-s', '-S', '-X', $method, '-o', "$dir/curl.body", '-D', "$dir/curl.head",
		'-w', '%{http_code}', '--max-time', $opt{max_time} // 120);
	push @cmd, '-H', "Content-Type: $opt{type}" if defined $opt{type};
	push @cmd, map { ('-H', $_) } @{ $opt{headers} // [] };
	if (defined $opt{body})
	{
		open my $fh, '>:raw', "$dir/curl.in" or croak $!;
		print $fh $opt{body};
		close $fh;
		push @cmd, '--data-binary', "\@$dir/curl.in";
	}
	push @cmd, @{ $opt{args} // [] };
	push @cmd, ($opt{url} // $self->{url}) . $path;
	unlink "$dir/curl.body", "$dir/curl.head";
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err);
	my $body = -e "$dir/curl.body" ? slurp_file("$dir/curl.body") : '';
	my $head = -e "$dir/curl.head" ? slurp_file("$dir/curl.head") : '';
	return ($out + 0, $body, $head, $err);
}

# Decode JSON text (undef if it is not JSON).
sub json
{
	my ($text) = @_;
	my $v = eval { JSON::PP->new->allow_nonref->decode($text) };
	return $v;
}

1;
