#!/usr/bin/env bash
# bench.sh: every benchmark, printing its figures (make bench runs it under
# with-testpg.sh -durable). The API benchmarks get fixed iteration
# counts: at go test's default one second the dashboard read runs only ~4
# times and its ratio swings with a single garbage collection; the floods
# run once (each of their figures is already a median or percentile).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
"$GO" test -run '^$' -bench 'BenchmarkDashboardQuery$' -benchtime 20x -benchmem ./api/
"$GO" test -run '^$' -bench 'BenchmarkCreateDeploymentObject$' -benchtime 2000x -benchmem ./api/
"$GO" test -run '^$' -bench 'BenchmarkLabelFilter$|BenchmarkViewerDuringLabelFloods$' -benchtime 50x ./api/
# Once: each flood's time to answer and the viewer latency under 8 floods.
"$GO" test -run '^$' -bench 'BenchmarkFloods$' -benchtime 1x -timeout 30m ./api/
others=$("$GO" list ./... | grep -v '/api$')
# The feed's server-side benchmark sets up 10,000 websockets (and a storm of
# their reconnections): longer than go test's default ten minutes on a busy
# machine.
# shellcheck disable=SC2086
"$GO" test -run '^$' -bench . -benchmem -timeout 60m $others
