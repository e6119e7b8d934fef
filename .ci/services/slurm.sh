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
MUNGE_SOCKET="$D/munge/munge.socket"
CTLD_PORT="${B2CAL_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${B2CAL_SLURMD_PORT:-6818}"

log() { echo "slurm.sh: $*" >&2; }

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

# munge: its own key and socket, so it never touches a system-wide munged.
if ! munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; then
    [ -f "$D/munge/munge.key" ] || mungekey --create --keyfile="$D/munge/munge.key"
    chmod 400 "$D/munge/munge.key"
    [ -f "$D/munge/munged.pid" ] && kill "$(cat "$D/munge/munged.pid")" 2>/dev/null || true
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    munged --key-file="$D/munge/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" \
        --seed-file="$D/munge/munged.seed" --force
    for _ in $(seq 50); do
        munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

# Test jobs are short and bound by Slurm's launch latency, not by CPU: the partition lets 16 jobs
# share each of the 2 cores (32 at once), which doubles the job throughput of the cluster.
# MaxArraySize/MaxJobCount are raised so benchmarks/bench_batch.py --full fits (10,000 subjobs).
# The node offers most of this machine's memory, so jobs asking for a few GB (as calibrations do) fit.
REAL_MEMORY=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat > "$CONF" <<CONF
ClusterName=b2cal
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/slurmd-%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
MinJobAge=300
MaxArraySize=10001
MaxJobCount=50000
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000
NodeName=localhost NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=$REAL_MEMORY State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:16
CONF

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
