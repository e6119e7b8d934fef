#!/usr/bin/env bash
# Install (if missing) and start an XRootD server on 127.0.0.1 exporting /calib, for tests and jobs.
#
#   .ci/services/xrootd.sh [STATE_DIR] [PORT]   # default /tmp/b2cal-services, port 1094
#   eval "$(.ci/services/xrootd.sh)"            # exports B2CAL_XROOTD_URL and B2CAL_XROOTD_DIR
#
# root://127.0.0.1:PORT//calib/<f> is the file STATE_DIR/xrootd/data/calib/<f>. xrootd refuses to
# run as root, so it runs as user `xrootd`, which owns the data directory. Idempotent: a server
# already answering on PORT is left alone. Only the export lines go to stdout.
set -euo pipefail

STATE_DIR="${1:-${B2CAL_SERVICES_DIR:-/tmp/b2cal-services}}"
PORT="${2:-${B2CAL_XROOTD_PORT:-1094}}"
D="$STATE_DIR/xrootd"
DATA="$D/data"
URL="root://127.0.0.1:$PORT/"

log() { echo "xrootd.sh: $*" >&2; }

if ! command -v xrootd >/dev/null || ! command -v xrdfs >/dev/null; then
    log "installing xrootd-server and xrootd-client"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq xrootd-server xrootd-client >&2
fi
id xrootd >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin xrootd

server_up() {
    XRD_CONNECTIONRETRY=1 XRD_CONNECTIONWINDOW=2 XRD_REQUESTTIMEOUT=5 \
        timeout 10 xrdfs "127.0.0.1:$PORT" stat /calib >/dev/null 2>&1
}

print_env() {
    echo "export B2CAL_XROOTD_URL=$URL"
    echo "export B2CAL_XROOTD_DIR=$DATA/calib"
}

if server_up; then
    log "already running on port $PORT"
    print_env
    exit 0
fi

mkdir -p "$DATA/calib" "$D/admin" "$D/run" "$D/log"
chmod 755 "$STATE_DIR" "$D"
# The exported tree is writable by everyone: tests (root) and the server (xrootd) both write it.
chown -R xrootd:xrootd "$DATA" "$D/admin" "$D/run" "$D/log"
chmod 1777 "$DATA/calib"

cat > "$D/xrootd.cfg" <<CFG
all.export /calib
oss.localroot $DATA
xrd.port $PORT
xrd.network nodnr
# Listens on every interface (xrootd cannot bind one address) but serves only this host.
xrd.allow host localhost
xrd.allow host 127.0.0.1
all.adminpath $D/admin
all.pidpath $D/run
CFG

PIDFILE="$D/run/b2cal/xrootd.pid"
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    sleep 1
fi
xrootd -b -R xrootd -c "$D/xrootd.cfg" -l "$D/log/xrootd.log" -n b2cal -k 3

for _ in $(seq 50); do
    if server_up; then
        log "started on port $PORT (data in $DATA/calib)"
        print_env
        exit 0
    fi
    sleep 0.2
done
log "xrootd did not come up; see $D/log/b2cal/xrootd.log"
exit 1
