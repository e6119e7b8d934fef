# What slurm.sh (the local cluster) and testhosts.sh (one cluster per test host) share: their own
# munged, and the slurm.conf of a single-node cluster. Sourced, not run.

# start_munge DIR: a munged with its own key and socket (DIR/munge.socket), so it never touches a
# system-wide one; left alone when it already answers.
start_munge() {
    local dir=$1 sock="$1/munge.socket"
    munge -n -S "$sock" 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1 && return 0
    [ -f "$dir/munge.key" ] || mungekey --create --keyfile="$dir/munge.key"
    chmod 400 "$dir/munge.key"
    [ -f "$dir/munged.pid" ] && kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
    rm -f "$sock" "$sock.lock"
    munged --key-file="$dir/munge.key" --socket="$sock" --pid-file="$dir/munged.pid" \
        --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" --force
    for _ in $(seq 50); do
        munge -n -S "$sock" 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
}

# write_slurm_conf FILE DIR CLUSTER NODE ADDR CTLD_PORT SLURMD_PORT PARTITION MEMORY_MB SHARE
# A single-node cluster whose state, spool, pid and log files are under DIR and whose munge socket is
# DIR/munge/munge.socket; NODE (at ADDR) runs both daemons and is the one node of PARTITION, offering
# 2 CPUs and MEMORY_MB, each core shared by SHARE jobs. Test jobs are short and bound by Slurm's
# launch latency, not by CPU, so sharing cores raises the job throughput. MaxArraySize/MaxJobCount
# are raised so benchmarks/bench_batch.py --full fits (10,000 subjobs). jobcomp/filetxt keeps the
# final states of jobs squeue has forgotten (DIR/log/jobcomp.txt).
write_slurm_conf() {
    local file=$1 dir=$2 cluster=$3 node=$4 addr=$5 ctld_port=$6 slurmd_port=$7 partition=$8
    local memory=$9 share=${10}
    cat > "$file" <<CONF
ClusterName=$cluster
SlurmctldHost=$node($addr)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MinJobAge=300
MaxArraySize=10001
MaxJobCount=50000
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000
NodeName=$node NodeHostname=$node NodeAddr=$addr CPUs=2 RealMemory=$memory State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:$share
CONF
    chmod 644 "$file"
}
