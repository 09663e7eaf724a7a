#!/usr/bin/env bash
# Style: every C file is clang-format clean (.clang-format), and the build is
# warning-free with -Wall -Wextra -Werror (the Makefile's flags; a warning
# fails the build).
set -u
cd "$(dirname "$0")/../.."
if make -s format-check; then echo "  ok: clang-format clean"; else echo "  FAILED: clang-format"; exit 1; fi
if make -s >/dev/null 2>&1 && grep -q -- '-Werror' Makefile; then echo "  ok: builds with -Werror"; else
	echo "  FAILED: build with -Werror"; exit 1; fi
