#!/usr/bin/env bash
# Install (if missing) Debian's Chromium, the browser the Playwright tests drive.
#
#   .ci/services/chromium.sh
#
# Playwright's own browser download does not work on these machines: the tests launch
# /usr/bin/chromium through `executable_path` (override with B2CAL_CHROMIUM). The playwright Python
# package itself comes with the venv (pyproject's `test` extra).
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }

if command -v chromium >/dev/null; then
    log "chromium already installed: $(chromium --version 2>/dev/null || true)"
    exit 0
fi

log "installing chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >&2
log "installed $(chromium --version 2>/dev/null || true)"
