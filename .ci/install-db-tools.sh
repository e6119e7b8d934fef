#!/bin/sh
# Client tools for calibration-database backups and restores: mariadb-dump/mariadb (MariaDB, MySQL),
# pg_dump/psql (PostgreSQL), sqlite3 (inspection only; SQLite backups use Python's sqlite3 module).
# Idempotent: does nothing when the tools are already there.
set -eu
missing=""
for tool in mariadb-dump mariadb pg_dump psql sqlite3; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -z "$missing" ]; then
    echo "database client tools present"
    exit 0
fi
echo "installing database client tools (missing:$missing)"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq mariadb-client postgresql-client sqlite3 >/dev/null
