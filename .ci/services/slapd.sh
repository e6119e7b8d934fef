#!/usr/bin/env bash
# Install (if missing) OpenLDAP's slapd and the ldap-utils client tools, for the LDAP login tests.
#
#   .ci/services/slapd.sh
#
# Installs only: each test session starts its own slapd on a free 127.0.0.1 port with a slapd.conf of
# its own under a temp dir (b2cal_assets_tests/fixtures/ldap.py), and stops it afterwards.
# Runs as root, no systemd; progress goes to stderr.
set -euo pipefail

log() { echo "slapd.sh: $*" >&2; }

if command -v slapd >/dev/null && command -v ldapadd >/dev/null && command -v slappasswd >/dev/null; then
    log "slapd and ldap-utils already installed"
    exit 0
fi

log "installing slapd and ldap-utils"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
apt-get -o DPkg::Lock::Timeout=600 install -y -qq slapd ldap-utils >&2
# The package's postinst may start a system slapd on port 389; the tests never use it.
if pgrep -x slapd >/dev/null && [ -f /var/run/slapd/slapd.pid ]; then
    kill "$(cat /var/run/slapd/slapd.pid)" 2>/dev/null || true
fi
log "installed $(slapd -VV 2>&1 | head -1)"
