#!/usr/bin/env bash
# Makes sure a headless Chromium is installed for the GraphiQL browser test
# (api/graphiql_browser_test.go), looking where the test looks:
# $BROKKR_CHROMIUM, then chromium or chromium-browser on $PATH. If none is
# found, installs Debian's chromium package with apt-get (about 100 MB; once:
# later runs find it and do nothing).
set -euo pipefail

if [[ -n "${BROKKR_CHROMIUM:-}" ]]; then
	if [[ -x "$BROKKR_CHROMIUM" ]]; then
		echo "Chromium present: BROKKR_CHROMIUM=$BROKKR_CHROMIUM"
		exit 0
	fi
	echo "BROKKR_CHROMIUM=$BROKKR_CHROMIUM is not an executable" >&2
	exit 1
fi

for name in chromium chromium-browser; do
	if command -v "$name" >/dev/null; then
		echo "Chromium present on PATH ($(command -v "$name"))"
		exit 0
	fi
done

if ! command -v apt-get >/dev/null; then
	echo "Chromium not found and apt-get is not available:" >&2
	echo "install Chromium or set BROKKR_CHROMIUM to its executable" >&2
	exit 1
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
	sudo="sudo"
fi
echo "Chromium not found (the GraphiQL test drives it headless): installing the chromium package:"
echo "  $sudo apt-get update && $sudo apt-get install -y chromium"
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
