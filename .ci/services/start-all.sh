#!/usr/bin/env bash
# Install and start everything the test suite needs on a fresh machine, as root, on 127.0.0.1.
# Every script is idempotent: a service already running is kept. MariaDB and PostgreSQL are started by
# the machine itself; they are restarted here only if they have stopped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${B2CAL_SERVICES_DIR:-/tmp/b2cal-services}"
mkdir -p "$state"

log() { echo "start-all: $*" >&2; }

if ! (echo > /dev/tcp/127.0.0.1/3306) 2>/dev/null; then
    log "MariaDB is not answering on 3306: starting it"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
if ! (echo > /dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    log "PostgreSQL is not answering on 5432: starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi

bash "$here/../install-db-tools.sh"
bash "$here/slurm.sh" "$state" > "$state/slurm.env"
bash "$here/testhosts.sh" "$state" > "$state/testhosts.env"
bash "$here/xrootd.sh" "$state" 1094 > "$state/xrootd.env"
bash "$here/rucio.sh" "$state" > "$state/rucio.env"
bash "$here/slapd.sh"
bash "$here/chromium.sh"
bash "$here/compose.sh" "$state" > "$state/compose.env"
log "services ready (state in $state)"
