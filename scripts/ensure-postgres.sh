#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (pg_ctl, initdb) are installed, looking
# where localpg looks: $BROKKR_PG_BIN, then $PATH, then /usr/lib/postgresql/*/bin.
# If none are found, installs the distribution's postgresql package with apt-get.
set -euo pipefail

found() {
	[[ -x "$1/pg_ctl" && -x "$1/initdb" ]]
}

if [[ -n "${BROKKR_PG_BIN:-}" ]]; then
	if found "$BROKKR_PG_BIN"; then
		echo "PostgreSQL server binaries present in BROKKR_PG_BIN=$BROKKR_PG_BIN"
		exit 0
	fi
	echo "BROKKR_PG_BIN=$BROKKR_PG_BIN holds no pg_ctl and initdb" >&2
	exit 1
fi

if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
	echo "PostgreSQL server binaries present on PATH ($(command -v pg_ctl))"
	exit 0
fi
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -rn); do
	if found "$dir"; then
		echo "PostgreSQL server binaries present in $dir"
		exit 0
	fi
done

if ! command -v apt-get >/dev/null; then
	echo "PostgreSQL server binaries not found and apt-get is not available:" >&2
	echo "install PostgreSQL (pg_ctl, initdb) or set BROKKR_PG_BIN to their directory" >&2
	exit 1
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
	sudo="sudo"
fi
echo "PostgreSQL server binaries not found: installing the postgresql package:"
echo "  $sudo apt-get update && $sudo apt-get install -y postgresql"
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
