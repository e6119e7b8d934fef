"""Scheduler commands and file transfer on a submit host, through the ``ssh`` binary.

One OpenSSH master connection per host (``ControlMaster``/``ControlPersist`` on a control socket)
carries every command and every transfer, so a status query costs one round trip, not a handshake.
Host keys are checked against the site's own ``known_hosts`` file and never accepted on first use
(``StrictHostKeyChecking=yes``, ``BatchMode=yes``). A connection that fails (ssh exits 255) is a
``BackendError`` naming the host: to the job manager a failed status query, which it tolerates.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

from b2cal_assets.backends.base import BackendError
from b2cal_assets.backends.commands import CommandResult

__all__ = ["SSH_FAILED", "SshRunner", "SshTarget"]

SSH_FAILED = 255  # ssh's own exit status when the connection (not the command) failed
_SENTINEL = "b2cal-exit="


@dataclass(frozen=True)
class SshTarget:
    """Where a site's scheduler commands run: ``user@host:port`` with a key (or the agent) and known_hosts."""

    host: str
    user: str
    known_hosts: Path
    port: int = 22
    key_file: Path | None = None  # None: the keys of the running ssh-agent

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _ssh_failure(target: SshTarget, stderr: str) -> str:
    """One line saying why ssh could not reach ``target``, and what to fix."""
    text = stderr.strip()
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return (
            f"the host key of {target.label} has CHANGED since it was put in {target.known_hosts}; "
            "check with the host's administrators, then replace its line there"
        )
    if (
        "Host key verification failed" in text
        or "No ED25519 host key is known" in text
        or "host key" in text.lower()
    ):
        return (
            f"the host key of {target.label} is not in {target.known_hosts}; add it "
            f"(ssh-keyscan -p {target.port} {target.host} >> {target.known_hosts}, after checking it)"
        )
    if "Permission denied" in text:
        how = f"key {target.key_file}" if target.key_file else "the ssh-agent's keys"
        return f"{target.label} refused {how}: authorise the key for user {target.user} there"
    last = text.splitlines()[-1] if text else "no message"
    return f"cannot reach {target.label}: {last}"


@dataclass
class SshRunner:
    """A ``CommandRunner`` that runs each command on ``target``; ``env`` is exported there first.

    ``upload`` and ``fetch`` move files as tar streams over the same master connection. Call
    ``close`` to end the master (it also ends by itself ``persist_s`` after the last use).
    """

    target: SshTarget
    control_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 120.0
    connect_timeout_s: int = 10
    persist_s: int = 300
    connect_tries: int = 2
    site: str = ""  # the site this host serves, named in messages

    def __post_init__(self) -> None:
        self.control_dir = Path(self.control_dir)

    # -- the ssh command line ---------------------------------------------------------------------

    @property
    def control_path(self) -> Path:
        # a unix socket path is limited to ~100 bytes: a short hash names the connection
        key = hashlib.sha256(f"{self.target.label}|{self.target.key_file}".encode()).hexdigest()[:16]
        return self.control_dir / f"cm-{key}"

    def ssh_argv(self, master: str = "no") -> list[str]:
        t = self.target
        argv = [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={t.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"ControlMaster={master}",
            "-o", f"ControlPath={self.control_path}",
            "-o", f"ControlPersist={self.persist_s}",
            "-o", f"ConnectTimeout={self.connect_timeout_s}",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=2",
            "-o", "LogLevel=ERROR",
            "-p", str(t.port),
            "-l", t.user,
        ]  # fmt: skip
        if t.key_file is not None:
            argv += ["-i", str(t.key_file), "-o", "IdentitiesOnly=yes"]
        return [*argv, t.host]

    def _master_alive(self) -> bool:
        check = [*self.ssh_argv()[:-1], "-O", "check", self.target.host]
        return subprocess.run(check, capture_output=True, timeout=30, check=False).returncode == 0

    def _open_master(self) -> None:
        """Start the master in the background (``-fN``); its output goes to a file, never to a pipe
        someone waits on (a persisting master would hold the pipe open)."""
        self.control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._master_alive():
            return
        self.control_path.unlink(missing_ok=True)  # a socket left by a killed master
        with tempfile.TemporaryFile() as errors:
            try:
                code = subprocess.run(
                    [*self.ssh_argv(master="yes"), "-f", "-N"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    timeout=self.connect_timeout_s + 30,
                    check=False,
                ).returncode
            except FileNotFoundError:
                raise BackendError("ssh is not on PATH: install the OpenSSH client on this machine") from None
            except subprocess.TimeoutExpired:
                raise _ConnectionFailed(f"cannot reach {self.target.label}: no answer") from None
            if code != 0:
                errors.seek(0)
                raise _ConnectionFailed(_ssh_failure(self.target, errors.read().decode(errors="replace")))

    def _remote_command(self, argv: Sequence[str]) -> str:
        """The command line for the remote shell; it ends by printing ``b2cal-exit=N`` to stderr, so a
        command's own exit 255 is told apart from ssh failing to connect."""
        exports = [f"export {k}={shlex.quote(str(v))};" for k, v in self.env.items()]
        command = " ".join(shlex.quote(str(a)) for a in argv)
        return " ".join([*exports, command, f"; rc=$?; echo {_SENTINEL}$rc >&2; exit $rc"])

    # -- CommandRunner ----------------------------------------------------------------------------

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        data = stdin.encode() if stdin is not None else None
        code, out, err = self._ssh(self._remote_command(argv), data, what=" ".join(argv[:3]))
        return CommandResult(argv, code, out.decode(errors="replace"), err.decode(errors="replace"))

    def shell(self, script: str, *, stdin: bytes | None = None, what: str = "a command") -> bytes:
        """Run ``script`` (sh) there; its stdout, or a ``BackendError`` naming the host when it fails."""
        code, out, err = self._ssh(
            f"{{ {script}\n}}; rc=$?; echo {_SENTINEL}$rc >&2; exit $rc", stdin, what=what
        )
        if code != 0:
            printed = err.decode(errors="replace").strip()[-1000:] or "(no output)"
            if "No space left on device" in printed:
                raise BackendError(self._disk_full(what))
            raise BackendError(f"{what} on {self.target.label} exited with {code}: {printed}")
        return out

    def _disk_full(self, what: str) -> str:
        """One line: whose disk is full, and what to fix."""
        if self.site:
            return (
                f"site {self.site}: the disk of its submit host {self.target.label} is full (No space left on "
                f"device) while {what}; free space there or give the site another remote root "
                f"(b2cal site update {self.site} --remote-root PATH)"
            )
        return (
            f"the disk of {self.target.label} is full (No space left on device) while {what}; "
            "free space there or use another remote root"
        )

    def _ssh(self, command: str, stdin: bytes | None, *, what: str) -> tuple[int, bytes, bytes]:

        @retry(
            retry=retry_if_exception_type(_ConnectionFailed),
            stop=stop_after_attempt(max(self.connect_tries, 1)),
            wait=wait_fixed(1),
            reraise=True,
        )
        def attempt() -> tuple[int, bytes, bytes]:
            self._open_master()
            try:
                proc = subprocess.run(
                    [*self.ssh_argv(), command],
                    input=stdin if stdin is not None else b"",
                    capture_output=True,
                    timeout=self.timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise BackendError(
                    f"{what} on {self.target.label} did not answer within {self.timeout_s:.0f} s"
                ) from None
            stderr, sentinel, _ = proc.stderr.rpartition(_SENTINEL.encode())
            if not sentinel:  # the command never ended there: the connection failed or was cut
                if proc.returncode == SSH_FAILED:
                    raise _ConnectionFailed(_ssh_failure(self.target, proc.stderr.decode(errors="replace")))
                stderr = proc.stderr
            return proc.returncode, proc.stdout, stderr

        try:
            return attempt()
        except _ConnectionFailed as exc:
            raise BackendError(str(exc)) from None

    # -- files ------------------------------------------------------------------------------------

    def upload(
        self,
        files: Mapping[PurePosixPath, tuple[bytes, int]] | None = None,
        trees: Mapping[PurePosixPath, Path] | None = None,
        *,
        dirs: Iterable[PurePosixPath] = (),
        fresh: Iterable[PurePosixPath] = (),
    ) -> None:
        """One tar stream: new directories ``dirs``, ``files`` (remote path -> content, mode) and local
        files or directories ``trees`` (remote path -> local path). Directories in ``fresh`` are
        removed first, so they hold only what is sent."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for remote in dirs:
                info = tarfile.TarInfo(str(remote).lstrip("/"))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for remote, local in (trees or {}).items():
                tar.add(str(local), arcname=str(remote).lstrip("/"), filter=_no_owner)
            for remote, (content, mode) in (files or {}).items():
                info = tarfile.TarInfo(str(remote).lstrip("/"))
                info.size, info.mode = len(content), mode
                tar.addfile(info, io.BytesIO(content))
        wipe = " ".join(shlex.quote(str(p)) for p in fresh)
        script = (
            f"rm -rf {wipe} && " if wipe else ""
        ) + "tar -C / -xmf - --no-same-owner --no-same-permissions"
        self.shell(script, stdin=buffer.getvalue(), what="copying job files")

    def fetch(self, pairs: Mapping[PurePosixPath, Path]) -> None:
        """Copy every file at the top of each remote directory into its local one, in one tar stream
        (a directory that does not exist yet gives nothing)."""
        if not pairs:
            return
        dirs = " ".join(shlex.quote(str(remote).lstrip("/")) for remote in pairs)
        script = f"cd / && find {dirs} -maxdepth 1 -type f -print0 2>/dev/null | tar --null -cf - -T -"
        data = self.shell(script, what="fetching job results")
        by_remote = {str(r).lstrip("/"): Path(local) for r, local in pairs.items()}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar.getmembers():
                parent, _, name = member.name.rpartition("/")
                local_dir = by_remote.get(parent)
                source = tar.extractfile(member) if member.isfile() else None
                if local_dir is None or source is None:
                    continue
                local_dir.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=local_dir, prefix=f".{name}.", delete=False) as out:
                    out.write(source.read())
                os.replace(out.name, local_dir / name)

    def close(self) -> None:
        """Let the master connection end: it takes no new sessions and its control socket goes, but
        another run's session still on it (two runs at one centre) finishes first (a no-op when none
        is open)."""
        subprocess.run(
            [*self.ssh_argv()[:-1], "-O", "stop", self.target.host],
            capture_output=True,
            timeout=30,
            check=False,
        )


def _no_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _ConnectionFailed(Exception):
    pass
