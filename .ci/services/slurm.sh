#!/usr/bin/env bash
# Install (if missing) and start a single-node Slurm cluster on 127.0.0.1, for tests and benchmarks.
#
#   .ci/services/slurm.sh [STATE_DIR]        # default /tmp/b2cal-services; state under STATE_DIR/slurm
#   eval "$(.ci/services/slurm.sh)"          # exports SLURM_CONF for the commands that follow
#
# Idempotent: a cluster already answering on this STATE_DIR is left alone. The only stdout is the
# `export SLURM_CONF=...` line; progress goes to stderr. Runs as root (SlurmUser=root), no systemd.
set -euo pipefail

STATE_DIR="${1:-${B2CAL_SERVICES_DIR:-/tmp/b2cal-services}}"
D="$STATE_DIR/slurm"
CONF="$D/slurm.conf"
CTLD_PORT="${B2CAL_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${B2CAL_SLURMD_PORT:-6818}"

log() { echo "slurm.sh: $*" >&2; }
# shellcheck source=slurm-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/slurm-common.sh"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq slurm-wlm munge >&2
fi

cluster_up() {
    [ -f "$CONF" ] || return 1
    SLURM_CONF="$CONF" scontrol ping 2>/dev/null | grep -q "is UP" || return 1
    local state
    state=$(SLURM_CONF="$CONF" sinfo -h -n localhost -o %T 2>/dev/null | head -1)
    case "$state" in idle*|mixed*|allocated*|completing*) return 0 ;; *) return 1 ;; esac
}

if cluster_up; then
    log "already running ($CONF)"
    echo "export SLURM_CONF=$CONF"
    exit 0
fi

mkdir -p "$D"/{munge,state,spool,log,run}
chmod 711 "$D/munge"

start_munge "$D/munge"

# 16 jobs share each of the 2 cores (32 at once); the node offers most of this machine's memory, so
# jobs asking for a few GB (as calibrations do) fit.
REAL_MEMORY=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
write_slurm_conf "$CONF" "$D" b2cal localhost 127.0.0.1 "$CTLD_PORT" "$SLURMD_PORT" debug "$REAL_MEMORY" 16

export SLURM_CONF="$CONF"
# Stop leftovers of an earlier run on this state dir (by their pid files only).
for pidfile in "$D/run/slurmctld.pid" "$D/run/slurmd-localhost.pid"; do
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        sleep 1
    fi
done

slurmctld -f "$CONF"
slurmd -f "$CONF" -N localhost

for _ in $(seq 60); do
    if cluster_up; then
        log "started ($CONF)"
        echo "export SLURM_CONF=$CONF"
        exit 0
    fi
    # A node left DOWN from an earlier run comes back here.
    scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
    sleep 0.5
done
log "Slurm did not come up; see $D/log/slurmctld.log and $D/log/slurmd-localhost.log"
exit 1
