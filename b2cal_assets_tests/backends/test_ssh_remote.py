"""Scheduler commands and jobs on a remote host: the real sshd and Slurm of the test hosts."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import uuid
from pathlib import Path, PurePosixPath

import pytest

from b2cal_assets.backends.base import BackendError, JobSpec, JobState
from b2cal_assets.backends.manager import JobManager, RetryPolicy, SubmitPolicy
from b2cal_assets.backends.remote import remote_backend
from b2cal_assets.backends.slurm import SlurmBackend
from b2cal_assets.backends.ssh import SshRunner, SshTarget
from b2cal_assets_tests.fixtures.disk import fill, mounted_tmpfs

pytestmark = [pytest.mark.slurm]


def runner_for(host, tmp_path: Path, known_hosts: Path | None = None, **kwargs) -> SshRunner:
    target = SshTarget(
        host=host.address,
        port=host.port,
        user=host.user,
        key_file=host.key,
        known_hosts=known_hosts or host.known_hosts,
    )
    control = Path("/tmp/b2cal-ssh-tests") / uuid.uuid4().hex[:8]  # socket paths must stay short
    return SshRunner(target, control_dir=control, **kwargs)


def test_commands_run_on_the_host_over_one_connection(test_hosts, tmp_path):
    host = test_hosts[0]
    ssh = runner_for(host, tmp_path)
    try:
        result = ssh(["sh", "-c", "echo $(hostname) $(id -un); exit 3"])
        assert (result.returncode, result.stdout.split()) == (3, ["th1", host.user])
        assert ssh.control_path.is_socket()  # the master stays for the next command
        again = ssh(["squeue", "-h", "-o", "%i"])
        assert again.returncode == 0, again.stderr
        # a command's own exit 255 is not taken for a lost connection
        assert ssh(["sh", "-c", "exit 255"]).returncode == 255
    finally:
        ssh.close()


def test_an_unknown_host_key_is_refused_not_accepted(test_hosts, tmp_path):
    host, other = test_hosts
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    ssh = runner_for(host, tmp_path, known_hosts=empty)
    with pytest.raises(BackendError, match=rf"host key of {re.escape(host.user)}@.* is not in {empty}"):
        ssh(["true"])
    assert empty.read_text() == ""  # nothing was added
    # the other host's key under this host's address: a changed host key
    other_key = next(line for line in host.known_hosts.read_text().splitlines() if other.address in line)
    changed = tmp_path / "changed"
    changed.write_text(other_key.replace(other.address, host.address, 1) + "\n")
    with pytest.raises(BackendError, match="has CHANGED"):
        runner_for(host, tmp_path, known_hosts=changed)(["true"])


def test_a_wrong_key_names_the_user_and_key(test_hosts, tmp_path):
    host = test_hosts[0]
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    target = SshTarget(host.address, host.user, host.known_hosts, host.port, key)
    with pytest.raises(BackendError, match=f"refused key {key}: authorise"):
        SshRunner(target, control_dir=Path("/tmp/b2cal-ssh-tests") / uuid.uuid4().hex[:8])(["true"])


def test_a_full_remote_disk_is_one_line_naming_the_site_and_what_to_fix(test_hosts, tmp_path):
    host = test_hosts[0]
    with mounted_tmpfs(host.root / f"full_{uuid.uuid4().hex[:8]}", "64k") as full:
        full.chmod(0o777)  # the centre's login writes there
        fill(full)
        ssh = runner_for(host, tmp_path, site="kek")
        try:
            with pytest.raises(BackendError) as err:
                ssh.upload({PurePosixPath(full / "job" / "spec.json"): (b"x" * 200_000, 0o644)})
        finally:
            ssh.close()
    message = str(err.value)
    assert "\n" not in message, message
    assert message.startswith(f"site kek: the disk of its submit host {host.user}@"), message
    assert "No space left on device" in message and "b2cal site update kek --remote-root PATH" in message


def _master_pid(ssh: SshRunner) -> int:
    check = subprocess.run(
        [*ssh.ssh_argv()[:-1], "-O", "check", ssh.target.host], capture_output=True, text=True, check=False
    )
    match = re.search(r"pid=(\d+)", check.stderr)
    assert match, check.stderr
    return int(match.group(1))


def test_jobs_run_remotely_and_a_lost_connection_is_a_failed_query(test_hosts, tmp_path):
    host = test_hosts[0]
    ssh = runner_for(host, tmp_path, connect_timeout_s=3)
    backend = remote_backend(SlurmBackend, {"time_limit": "00:05:00"}, ssh, host.root, python=host.python)
    data = tmp_path / "inputs"
    data.mkdir()
    (data / "numbers.txt").write_text("1 2 3\n")
    program = (
        "import sys, time, pathlib; nums = pathlib.Path(sys.argv[1]).read_text().split(); time.sleep(4); "
        "pathlib.Path('result.txt').write_text(str(sum(map(int, nums)) * int(sys.argv[2])))"
    )
    specs = []
    for i in range(2):
        workdir = tmp_path / "jobs" / str(i)
        workdir.mkdir(parents=True)
        specs.append(
            JobSpec(
                name=f"remote.{i}",
                argv=(
                    backend.job_python(),
                    "-c",
                    program,
                    backend.job_path(data / "numbers.txt"),
                    str(i + 1),
                ),
                workdir=workdir,
                inputs=(data,),
            )
        )
    outage: list[str] = []
    warnings: list[str] = []

    def cut_once(progress) -> None:
        """After the first answered query: the connection is killed and the host is off the network for 10 s (longer than ssh's own retries)."""
        if outage:
            return
        outage.append("cut")
        os.kill(_master_pid(ssh), 9)
        if host.namespace:
            link = ["ip", "netns", "exec", host.namespace, "ip", "link", "set", f"{host.user}-n"]
            subprocess.run([*link, "down"], check=True)
            threading.Timer(10.0, lambda: subprocess.run([*link, "up"], check=True)).start()

    manager = JobManager(
        backend,
        SubmitPolicy(poll_interval_s=0.5, max_failed_polls=30, poll_backoff_max_s=1.0, forgotten_grace_s=30),
        RetryPolicy(max_retries=0),
    )
    try:
        results = manager.run(specs, on_progress=cut_once, on_warning=warnings.append)
    finally:
        ssh.close()
    assert [r.state for r in results] == [JobState.DONE, JobState.DONE]
    assert [r.tries for r in results] == [1, 1]  # not lost, not submitted again
    assert any("status query failed" in w and host.address in w for w in warnings), warnings
    # the results came back here; the jobs could not have written here themselves
    assert [(s.workdir / "result.txt").read_text() for s in specs] == ["6", "12"]
    assert (specs[0].workdir / "exit_code").read_text().strip() == "0"
    assert oct(tmp_path.stat().st_mode & 0o777) != "0o777"
    # the remote copy of the job directory lives under the site's remote root
    assert Path(backend.job_path(specs[0].workdir), "result.txt").is_file()
