#!/usr/bin/env bash
# Two remote calibration centres for the tests: each a network namespace of its own (ip netns, a veth
# pair, 10.231.N.1 on the main side and 10.231.N.2 inside, nowhere else) running its own sshd (its own
# host key, one authorised test key) and its own single-node Slurm (munged, slurmctld, slurmd with a
# config, state and logs of their own). Each host has a login of its own (b2th1, b2th2) whose home and
# storage are its own directories; jobs run as that user, who cannot read the orchestrator's files.
#
#   .ci/services/testhosts.sh [STATE_DIR]     # default /tmp/b2cal-services; state under STATE_DIR/testhosts
#
# Idempotent: hosts already answering are left alone. stdout is only `export ...` lines (the key,
# known_hosts, the hosts' addresses, users and directories); progress goes to stderr. Runs as root.
# If namespaces cannot be made, it falls back to two sshd on 127.0.0.1 ports 2221/2222 (with the
# same users and directories, and one Slurm each on their own ports) and says B2CAL_TESTHOSTS_MODE=loopback.
set -euo pipefail

STATE_DIR="${1:-${B2CAL_SERVICES_DIR:-/tmp/b2cal-services}}"
T="$STATE_DIR/testhosts"
log() { echo "testhosts.sh: $*" >&2; }
# shellcheck source=slurm-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/slurm-common.sh"

need=()
command -v sshd >/dev/null || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
/usr/bin/python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >&2
fi

mkdir -p "$T"
chmod 755 "$STATE_DIR" "$T"

# The remote hosts' Python: the system's, in a venv with what the toy calibration scripts import
# and matplotlib for the validation plots (validation runs as a batch job at the centre).
# (b2cal itself is not installed there: every job brings it along.)
VENV="$T/venv"
if ! "$VENV/bin/python" -c "import numpy, uproot, matplotlib" 2>/dev/null; then
    log "making the remote hosts' Python ($VENV: numpy, uproot, matplotlib)"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q numpy uproot matplotlib >&2
fi
chmod -R a+rX "$VENV"

# The orchestrator's test key, authorised on both hosts.
[ -f "$T/client_key" ] || ssh-keygen -q -t ed25519 -N "" -C "b2cal-tests" -f "$T/client_key"
chmod 600 "$T/client_key"

MODE=netns
if ! ip netns add b2cal-probe 2>/dev/null && ! ip netns list | grep -q '^b2cal-probe'; then
    MODE=loopback
fi
ip netns delete b2cal-probe 2>/dev/null || true

# host N: namespace, address, sshd port, slurm ports
addr() { if [ "$MODE" = netns ]; then echo "10.231.$1.2"; else echo 127.0.0.1; fi; }
ssh_port() { if [ "$MODE" = netns ]; then echo 22; else echo "222$1"; fi; }
ctld_port() { if [ "$MODE" = netns ]; then echo 6817; else echo "68${1}7"; fi; }
slurmd_port() { if [ "$MODE" = netns ]; then echo 6818; else echo "68${1}8"; fi; }
# (StrictModes no: the test key files live under /tmp, whose mode sshd would refuse.)
# A host's processes: its network namespace (nsenter, so /sys stays mounted as it is, which slurmd
# needs) and a UTS namespace of their own named th<N> (slurmctld must run on the host it is configured for).
in_host() {
    local n=$1; shift
    if [ "$MODE" = netns ]; then
        nsenter --net="/run/netns/b2cal-th$n" unshare --uts sh -c 'hostname "$0" && exec "$@"' "th$n" "$@"
    else
        unshare --uts sh -c 'hostname "$0" && exec "$@"' "th$n" "$@"
    fi
}

setup_network() {
    local n=$1 ns="b2cal-th$1"
    [ "$MODE" = netns ] || return 0
    ip netns list | grep -q "^$ns\b" || ip netns add "$ns"
    if ! ip link show "b2th$n-h" >/dev/null 2>&1; then
        ip link add "b2th$n-h" type veth peer name "b2th$n-n"
        ip link set "b2th$n-n" netns "$ns"
        ip addr add "10.231.$n.1/24" dev "b2th$n-h"
        ip netns exec "$ns" ip addr add "10.231.$n.2/24" dev "b2th$n-n"
    fi
    ip link set "b2th$n-h" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip link set "b2th$n-n" up
}

setup_user() {
    local n=$1 user="b2th$1" D="$T/host$1"
    mkdir -p "$D"
    chmod 755 "$D"
    id "$user" >/dev/null 2>&1 || useradd -M -d "$D/home" -s /bin/bash "$user"
    usermod -p "*" "$user"  # no password, but not locked (sshd refuses locked accounts to key logins too)
    mkdir -p "$D/home" "$D/root" "$D/storage"
    chown "$user:$user" "$D/home" "$D/root" "$D/storage"
    chmod 700 "$D/home"
    chmod 755 "$D/root" "$D/storage"
}

sshd_up() {
    local n=$1
    [ -f "$T/host$n/sshd.pid" ] && kill -0 "$(cat "$T/host$n/sshd.pid")" 2>/dev/null || return 1
    in_host "$n" ssh-keyscan -T 3 -p "$(ssh_port "$n")" "$(addr "$n")" 2>/dev/null | grep -q ssh-ed25519
}

start_sshd() {
    local n=$1 D="$T/host$1"
    [ -f "$D/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N "" -f "$D/ssh_host_ed25519_key"
    cp "$T/client_key.pub" "$D/authorized_keys"
    chmod 644 "$D/authorized_keys"
    cat > "$D/sshd_config" <<CONF
ListenAddress $(addr "$n")
Port $(ssh_port "$n")
HostKey $D/ssh_host_ed25519_key
PidFile $D/sshd.pid
AuthorizedKeysFile $D/authorized_keys
AllowUsers b2th$n
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
StrictModes no
SetEnv SLURM_CONF=$D/slurm/slurm.conf
MaxStartups 50
MaxSessions 50
LogLevel INFO
CONF
    mkdir -p /run/sshd
    chmod 755 /run/sshd
    if sshd_up "$n" && cmp -s "$D/sshd_config" "$D/sshd_config.running"; then return 0; fi
    cp "$D/sshd_config" "$D/sshd_config.running"
    [ -f "$D/sshd.pid" ] && kill "$(cat "$D/sshd.pid")" 2>/dev/null || true
    in_host "$n" /usr/sbin/sshd -f "$D/sshd_config" -E "$D/sshd.log"
    for _ in $(seq 50); do sshd_up "$n" && return 0; sleep 0.1; done
    log "sshd of host $n did not come up; see $D/sshd.log"
    exit 1
}

slurm_up() {
    local n=$1 conf="$T/host$1/slurm/slurm.conf"
    [ -f "$conf" ] || return 1
    in_host "$n" env SLURM_CONF="$conf" scontrol ping 2>/dev/null | grep -q "is UP" || return 1
    local state
    state=$(in_host "$n" env SLURM_CONF="$conf" sinfo -h -n "th$n" -o %T 2>/dev/null | head -1)
    case "$state" in idle*|mixed*|allocated*|completing*) return 0 ;; *) return 1 ;; esac
}

start_slurm() {
    local n=$1 D="$T/host$1/slurm"
    local conf="$D/slurm.conf"
    if slurm_up "$n"; then return 0; fi
    mkdir -p "$D"/{munge,state,spool,log,run}
    chmod 755 "$D" "$D/log"
    chmod 711 "$D/munge"
    start_munge "$D/munge"
    write_slurm_conf "$conf" "$D" "b2th$n" "th$n" "$(addr "$n")" "$(ctld_port "$n")" "$(slurmd_port "$n")" \
        "centre$n" 1000 4
    for pidfile in "$D/run/slurmctld.pid" "$D/run/slurmd-th$n.pid"; do
        if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
            sleep 1
        fi
    done
    in_host "$n" env SLURM_CONF="$conf" slurmctld -f "$conf"
    in_host "$n" env SLURM_CONF="$conf" slurmd -f "$conf" -N "th$n"
    for _ in $(seq 60); do
        slurm_up "$n" && return 0
        in_host "$n" env SLURM_CONF="$conf" scontrol update NodeName="th$n" State=RESUME >/dev/null 2>&1 || true
        sleep 0.5
    done
    log "Slurm of host $n did not come up; see $D/log"
    exit 1
}

: > "$T/known_hosts.new"
for n in 1 2; do
    setup_network "$n"
    setup_user "$n"
    start_sshd "$n"
    start_slurm "$n"
    key=$(cut -d' ' -f1,2 "$T/host$n/ssh_host_ed25519_key.pub")
    if [ "$(ssh_port "$n")" = 22 ]; then
        echo "$(addr "$n") $key" >> "$T/known_hosts.new"
    else
        echo "[$(addr "$n")]:$(ssh_port "$n") $key" >> "$T/known_hosts.new"
    fi
done
mv "$T/known_hosts.new" "$T/known_hosts"
chmod 644 "$T/known_hosts"
log "two test hosts ready ($MODE)"

echo "export B2CAL_TESTHOSTS_MODE=$MODE"
echo "export B2CAL_TESTHOSTS_DIR=$T"
echo "export B2CAL_TESTHOSTS_KEY=$T/client_key"
echo "export B2CAL_TESTHOSTS_KNOWN_HOSTS=$T/known_hosts"
echo "export B2CAL_TESTHOSTS_PYTHON=$VENV/bin/python"
for n in 1 2; do
    echo "export B2CAL_TESTHOST${n}=b2th$n@$(addr "$n"):$(ssh_port "$n")"
    echo "export B2CAL_TESTHOST${n}_NS=$([ "$MODE" = netns ] && echo "b2cal-th$n" || echo "")"
    echo "export B2CAL_TESTHOST${n}_ROOT=$T/host$n/root"
    echo "export B2CAL_TESTHOST${n}_STORAGE=$T/host$n/storage"
done
