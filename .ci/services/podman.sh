#!/usr/bin/env bash
# A Docker-compatible container engine without Docker: Debian's podman serving the Docker API on a
# unix socket, and a Debian base image made with debootstrap (no image registry is reachable here).
#
#   .ci/services/podman.sh [STATE_DIR]      # prints: export DOCKER_HOST=unix://<STATE_DIR>/podman.sock
#
# Idempotent: a socket that answers is kept, the base image is built once and cached (as a tarball under
# STATE_DIR too, so a wiped podman store re-imports it in seconds). runc, not crun, and no default
# ulimits: crun fails on rlimits and on this machine's hybrid cgroup layout. Runs as root, no systemd;
# progress goes to stderr.
set -euo pipefail
STATE_DIR="${1:-${B2CAL_SERVICES_DIR:-/tmp/b2cal-services}}"
SOCK="$STATE_DIR/podman.sock"
BASE_IMAGE="${B2CAL_BASE_IMAGE:-localhost/b2cal-base:bookworm}"
BASE_TAR="$STATE_DIR/b2cal-base-bookworm.tar"
log() { echo "podman.sh: $*" >&2; }
mkdir -p "$STATE_DIR"

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing podman, runc and debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq podman runc debootstrap >&2
fi

mkdir -p /etc/containers
conf=/etc/containers/containers.conf
if ! grep -q '^default_ulimits = \[\]' "$conf" 2>/dev/null; then
    log "writing $conf (runc, no default ulimits)"
    cat > "$conf" <<'EOF'
# written by .ci/services/podman.sh: crun fails on rlimits and on the hybrid cgroup layout here
[containers]
default_ulimits = []

[engine]
runtime = "runc"
EOF
fi
# a short name like "mariadb" must not wait on a registry prompt
if [ ! -f /etc/containers/registries.conf.d/99-b2cal.conf ]; then
    mkdir -p /etc/containers/registries.conf.d
    echo 'short-name-mode = "disabled"' > /etc/containers/registries.conf.d/99-b2cal.conf
fi

answers() { curl -sf --max-time 5 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
if answers; then
    log "podman API already answering on $SOCK"
else
    rm -f "$SOCK"
    log "starting podman system service on $SOCK"
    nohup podman --runtime runc system service --time=0 "unix://$SOCK" \
        > "$STATE_DIR/podman-service.log" 2>&1 &
    echo $! > "$STATE_DIR/podman-service.pid"
    for _ in $(seq 1 60); do answers && break; sleep 0.5; done
    answers || { log "podman service did not answer; see $STATE_DIR/podman-service.log"; exit 1; }
fi
# the daemon container (a non-root user with the socket's group, DOCKER_GID) launches run containers
chmod 660 "$SOCK"

# podman runs a container's healthcheck from a systemd timer; without systemd nothing runs it and the
# container stays "starting" (compose's `condition: service_healthy` would wait for ever). This loop
# does what the timers would: every 10 s, the check of every running container that has one.
ticker_pid="$STATE_DIR/podman-health.pid"
if [ -f "$ticker_pid" ] && kill -0 "$(cat "$ticker_pid")" 2>/dev/null; then
    log "healthcheck ticker already running"
else
    log "starting the healthcheck ticker (no systemd timers here)"
    nohup sh -c 'while :; do
        for c in $(podman ps -q); do  # one without a healthcheck just says so
            nice podman healthcheck run "$c" >/dev/null 2>&1 || true
        done
        sleep 10
    done' > /dev/null 2>&1 &
    echo $! > "$ticker_pid"
fi

if podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE already present"
elif [ -s "$BASE_TAR" ]; then
    log "importing the cached base image from $BASE_TAR"
    podman load -q -i "$BASE_TAR" >&2
else
    root="$(mktemp -d "$STATE_DIR/debootstrap.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    log "building $BASE_IMAGE with debootstrap (minbase bookworm)"
    mirror="$(awk '/^(deb|URIs:)/ {for (i=1;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' \
        /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -1 || true)"
    debootstrap --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >&2
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >&2
    podman save -q -o "$BASE_TAR" "$BASE_IMAGE" >&2
fi
echo "export DOCKER_HOST=unix://$SOCK"
