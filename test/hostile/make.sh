#!/usr/bin/env bash
# test/hostile/make.sh DIR: write the big hostile messages into DIR.
#
# The small hostile messages are committed beside this script; the big ones
# (deep nesting, huge strings, many keys, messages over the limit) are made
# here so no file over 1 MB is committed. Their expected fates are listed in
# test/hostile/EXPECTED with the small ones. The limit they test is the
# default pinpipe.max_message_bytes, 1048576.
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
out=$1
mkdir -p "$out"

# rep N TEXT: TEXT repeated N times (TEXT without a newline)
rep() { yes -- "$2" | head -n "$1" | tr -d '\n'; }

# pad_to FILE SIZE PREFIX SUFFIX: PREFIX, 'x' up to SIZE bytes in all, SUFFIX
pad_to() {
	local n=$(($2 - ${#3} - ${#4}))
	{
		printf '%s' "$3"
		head -c "$n" /dev/zero | tr '\0' x
		printf '%s' "$4"
	} >"$out/$1"
}

# nesting
{ printf '{"index": 7, "deep": '; rep 100000 '['; rep 100000 ']'; printf '}'; } \
	>"$out/deeply_nested_arrays_100k"
{ printf '{"ind": 7, "deep": '; rep 100000 '{"a": '; printf '1'; rep 100000 '}'; printf '}'; } \
	>"$out/deeply_nested_objects_100k"
{ rep 100000 '['; rep 100000 ']'; } >"$out/deeply_nested_arrays_100k_as_message"
{ printf '{"index": 7, "deep": '; rep 2000 '['; rep 2000 ']'; printf '}'; } \
	>"$out/nested_2000_levels_kept_in_extra"

# huge strings and messages around the limit
pad_to message_4_5mb 4718592 '{"index": 7, "title": "' '"}'
pad_to huge_string_5mb 5242880 '{"index": 7, "title": "' '"}'
pad_to message_10mb 10485760 '{"index": 7, "category": "art", "description": "' '"}'
pad_to string_1mb_title_under_limit 1000000 '{"index": 7, "title": "' '"}'
pad_to message_1048576_bytes_at_limit 1048576 '{"index": 7, "title": "' '"}'
pad_to message_1048577_bytes_over_limit 1048577 '{"index": 7, "title": "' '"}'
{ printf '{"index": 7, "title": "'; rep 170000 '\u00e9'; printf '"}'; } \
	>"$out/string_of_170k_unicode_escapes"
{ printf '{"index": 7, "notes": "'; rep 500000 '\n'; printf '"}'; } \
	>"$out/extra_string_of_500k_newline_escapes"

# very many keys
{ printf '{"ind": 7'; seq 0 99999 | awk '{ printf ",\"%s\":0", $1 }'; printf '}'; } \
	>"$out/many_keys_100k"
{ printf '{"ind": 7'; seq 0 99999 | awk '{ printf ",\"%s\":0", $1 }'; printf ',"0":1}'; } \
	>"$out/many_keys_100k_last_duplicate"
{ printf '{"ind": 7, "list": [0'; rep 99999 ',0'; printf ']}'; } >"$out/array_of_100k_items"

# keys with 1 MB names
pad_to key_1mb_name 1000000 '{"index": 7, "' '": 1}'
pad_to key_1mib_name_over_limit 1048600 '{"index": 7, "' '": 1}'
{ printf '{"index": 7, "'; head -c 1000000 /dev/zero | tr '\0' k; printf '": 1, "'; \
	head -c 1000000 /dev/zero | tr '\0' k; printf '": 2}'; } >"$out/two_keys_1mb_names_over_limit"
{ printf '{"ind": 7, "'; rep 333000 'é'; printf '": "accented key"}'; } \
	>"$out/key_of_333k_accented_letters"
