"""Which ``Host`` names this machine: light, so the CLI can check ``--no-auth`` without the webserver."""

from __future__ import annotations

import ipaddress


def loopback_host(host_header: str) -> bool:
    """A ``Host`` that names this machine's loopback (DNS rebinding sends another name)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
