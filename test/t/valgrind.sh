#!/usr/bin/env bash
# The tools under valgrind memcheck: no errors, no definitely lost memory.
exec bash "$(dirname "$0")/../valgrind_tools.sh"
