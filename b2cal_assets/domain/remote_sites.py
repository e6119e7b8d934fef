"""A remote calibration centre: the submit host its scheduler commands run on, over SSH.

Checked here once, so the CLI, the database and the backend agree on what a valid setting is: a
host key is always checked against the site's own ``known_hosts`` file (b2cal never accepts a key
on first use), and the remote root is an absolute path a batch script can carry unquoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from b2cal_assets.domain.settings import ContractError

__all__ = ["DEFAULT_REMOTE_PYTHON", "RemoteHost"]

DEFAULT_REMOTE_PYTHON = "python3"
_SUBMIT_HOST = re.compile(
    r"(?P<user>[A-Za-z_][A-Za-z0-9_.-]{0,31})@(?P<host>[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_SAFE_PATH = re.compile(r"/[A-Za-z0-9_.,:@%+/=~-]*")


@dataclass(frozen=True)
class RemoteHost:
    """``submit_host`` is ``user@host[:port]``; ``ssh_key`` empty means the ssh-agent's keys."""

    submit_host: str
    known_hosts: str
    remote_root: str
    ssh_key: str = ""
    remote_python: str = DEFAULT_REMOTE_PYTHON

    def __post_init__(self) -> None:
        match = _SUBMIT_HOST.fullmatch(self.submit_host.strip())
        if not match:
            raise ContractError("submit_host", f"{self.submit_host!r} is not user@host or user@host:port")
        if not 1 <= self.port <= 65535:
            raise ContractError("submit_host", f"port {self.port} is not between 1 and 65535")
        if not self.known_hosts.startswith("/"):
            raise ContractError(
                "known_hosts",
                "a remote site needs the absolute path of a known_hosts file holding the host's key "
                f"(host keys are never accepted on first use), got {self.known_hosts!r}",
            )
        if self.ssh_key and not self.ssh_key.startswith("/"):
            raise ContractError(
                "ssh_key", f"must be an absolute path (or empty for the agent), got {self.ssh_key!r}"
            )
        if not _SAFE_PATH.fullmatch(self.remote_root) or self.remote_root.rstrip("/") == "":
            raise ContractError(
                "remote_root",
                f"must be an absolute directory on the submit host without spaces, quotes or $, got {self.remote_root!r}",
            )
        if not self.remote_python.strip() or re.search(r"[\s'\"$`;&|]", self.remote_python):
            raise ContractError(
                "remote_python", f"must be a command without spaces or quotes, got {self.remote_python!r}"
            )

    def _part(self, name: str) -> str:
        match = _SUBMIT_HOST.fullmatch(self.submit_host.strip())
        assert match is not None
        return match[name] or ""

    @property
    def user(self) -> str:
        return self._part("user")

    @property
    def host(self) -> str:
        return self._part("host").strip("[]")

    @property
    def port(self) -> int:
        return int(self._part("port") or 22)
