#!/usr/bin/env bash
# Install (if missing) and start a real Rucio server on 127.0.0.1, for the Rucio catalog tests.
#
#   .ci/services/rucio.sh [STATE_DIR] [PORT]    # default /tmp/b2cal-services, port 18180
#   eval "$(.ci/services/rucio.sh)"             # exports B2CAL_RUCIO_* (host, account, password, dir)
#
# The `rucio` server package from PyPI goes into a venv of its own (STATE_DIR/rucio/venv, never the
# project's venv: it pins its own SQLAlchemy/Flask), with psycopg, on the machine's PostgreSQL in a
# database of its own (`b2cal_rucio`). The schema is built and the root account bootstrapped once; the
# REST API is served by werkzeug on loopback with userpass authentication. Idempotent: a server
# already answering /ping on PORT is left alone. Only the export lines go to stdout.
set -euo pipefail

STATE_DIR="${1:-${B2CAL_SERVICES_DIR:-/tmp/b2cal-services}}"
PORT="${2:-${B2CAL_RUCIO_PORT:-18180}}"
RUCIO_VERSION="${B2CAL_RUCIO_VERSION:-41.5.1}"
D="$STATE_DIR/rucio"
VENV="$D/venv"
DB="b2cal_rucio"
DB_URL="postgresql+psycopg://postgres@127.0.0.1:5432/$DB"
HOST_URL="http://127.0.0.1:$PORT"
PASSWORD="b2cal-test-root"

log() { echo "rucio.sh: $*" >&2; }

print_env() {
    echo "export B2CAL_RUCIO_HOST=$HOST_URL"
    echo "export B2CAL_RUCIO_ACCOUNT=root"
    echo "export B2CAL_RUCIO_USERNAME=root"
    echo "export B2CAL_RUCIO_PASSWORD=$PASSWORD"
    echo "export B2CAL_RUCIO_SERVER_DIR=$D"  # its venv and rucio.cfg: for server-side admin steps in tests
}

server_up() {
    timeout 5 "$VENV/bin/python" - "$HOST_URL" >/dev/null 2>&1 <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/ping", timeout=4) as r:
    assert "version" in json.load(r)
PY
}

if [ -x "$VENV/bin/python" ] && server_up; then
    log "already running on port $PORT"
    print_env
    exit 0
fi

mkdir -p "$D/etc" "$D/log" "$D/trace" "$D/run"

if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import rucio, psycopg, werkzeug" 2>/dev/null; then
    log "installing rucio==$RUCIO_VERSION and psycopg into $VENV (takes a few minutes)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        "rucio==$RUCIO_VERSION" "psycopg[binary]" werkzeug >&2
fi
SITE="$("$VENV/bin/python" -c 'import rucio, os; print(os.path.dirname(os.path.dirname(rucio.__file__)))')"

cat > "$D/etc/alembic.ini" <<INI
[alembic]
script_location = $SITE/rucio/db/sqla/migrate_repo
sqlalchemy.url = $DB_URL
version_table_schema = rucio

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console
qualname =

[logger_sqlalchemy]
level = WARN
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
INI

cat > "$D/etc/rucio.cfg" <<CFG
[common]
logdir = $D/log
loglevel = WARNING

[database]
default = $DB_URL
schema = rucio
pool_size = 5
max_overflow = 5

[bootstrap]
userpass_identity = root
userpass_pwd = $PASSWORD
userpass_email = root@localhost

[client]
rucio_host = $HOST_URL
auth_host = $HOST_URL
auth_type = userpass
username = root
password = $PASSWORD
account = root
request_retries = 1

[policy]
permission = generic
schema = generic
lfn2pfn_algorithm_default = hash

[api]
endpoints = accounts, auth, config, dids, ping, replicas, rses, rules, scopes, vos

[trace]
tracedir = $D/trace

[alembic]
cfg = $D/etc/alembic.ini
CFG
export RUCIO_CONFIG="$D/etc/rucio.cfg"

if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    log "creating database $DB"
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB" >&2
fi

# The stamp alone is not enough: a machine whose PostgreSQL was reset has lost the schema.
schema_there() {
    psql -h 127.0.0.1 -U postgres -d "$DB" -tAc \
        "SELECT 1 FROM information_schema.tables WHERE table_schema = 'rucio' AND table_name = 'accounts'" | grep -q 1
}
if ! [ -f "$D/bootstrapped" ] || ! schema_there; then
    log "building the schema and bootstrapping the root account"
    psql -h 127.0.0.1 -U postgres -d "$DB" -qc "DROP SCHEMA IF EXISTS rucio CASCADE" >&2
    "$VENV/bin/python" - >&2 <<'PY'
from rucio.db.sqla.util import build_database, create_base_vo, create_root_account
build_database()
create_base_vo()
create_root_account()
PY
    touch "$D/bootstrapped"
fi

cat > "$D/etc/serve.py" <<PY
"""Serve Rucio's REST API (Flask) on loopback with werkzeug."""
from werkzeug.serving import run_simple

from rucio.web.rest.flaskapi.v1.main import application

run_simple("127.0.0.1", $PORT, application, threaded=True, use_reloader=False)
PY

PIDFILE="$D/run/server.pid"
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    sleep 1
fi
RUCIO_CONFIG="$D/etc/rucio.cfg" setsid nohup "$VENV/bin/python" "$D/etc/serve.py" \
    > "$D/log/server.log" 2>&1 < /dev/null &
echo $! > "$PIDFILE"

for _ in $(seq 100); do
    if server_up; then
        log "started on port $PORT (log $D/log/server.log)"
        print_env
        exit 0
    fi
    sleep 0.3
done
log "the Rucio server did not come up; see $D/log/server.log"
exit 1
