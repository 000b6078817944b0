#!/usr/bin/env bash
# with-testpg.sh [-durable] CMD [ARGS...]
#
# Runs CMD with TEST_DATABASE_URL pointing at real PostgreSQL: the caller's
# $TEST_DATABASE_URL when set, otherwise an embedded cluster that this script
# starts and always stops again (.brokkr/test, built for speed with fsync off;
# with -durable, .brokkr/bench with the server's default durability, for
# benchmarks). The exit status is CMD's.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=.brokkr/test
flags=()
if [[ "${1:-}" == "-durable" ]]; then
	dir=.brokkr/bench
	flags=(-durable)
	shift
fi

if [[ -z "${TEST_DATABASE_URL:-}" ]]; then
	go build -o .brokkr/testpg ./cmd/testpg
	trap '.brokkr/testpg stop "$dir"' EXIT
	TEST_DATABASE_URL=$(.brokkr/testpg "${flags[@]}" start "$dir")
	export TEST_DATABASE_URL
	echo "PostgreSQL for tests: $TEST_DATABASE_URL ($dir)"
fi
"$@"
