"""The wrapper keeps the job's output and exit code in its directory, also when it is killed."""

import os
import signal
import subprocess
import time

import pytest

from b2cal_assets.backends.base import JobSpec
from b2cal_assets.backends.wrapper import log_tail, read_exit_code, render_wrapper, write_wrapper


def _spec(tmp_path, *argv, env=None):
    workdir = tmp_path / "job"
    workdir.mkdir(exist_ok=True)
    return JobSpec(name="job", argv=tuple(argv), workdir=workdir, env=env or {})


def _run(path):
    return subprocess.run(["bash", str(path)], capture_output=True, timeout=60)


def test_exit_code_output_and_env_are_kept(tmp_path):
    spec = _spec(
        tmp_path,
        "bash",
        "-c",
        'echo "out $GREETING"; echo "err line" >&2; exit 3',
        env={"GREETING": "it's a 'quoted' value"},
    )
    path = write_wrapper(spec)
    assert path == spec.workdir / "run.sh"
    assert os.access(path, os.X_OK)
    proc = _run(path)
    assert proc.returncode == 3
    assert read_exit_code(spec.workdir) == 3
    assert (spec.workdir / "stdout").read_text() == "out it's a 'quoted' value\n"
    assert "err line" in log_tail(spec.workdir)
    assert not (spec.workdir / "exit_code.tmp").exists()


def test_success_writes_zero_and_removes_a_stale_exit_code(tmp_path):
    spec = _spec(tmp_path, "true")
    (spec.workdir / "exit_code").write_text("1\n")
    _run(write_wrapper(spec))
    assert read_exit_code(spec.workdir) == 0


def test_sigterm_is_trapped_and_written_as_143(tmp_path):
    spec = _spec(tmp_path, "sleep", "60")
    path = write_wrapper(spec)
    proc = subprocess.Popen(["bash", str(path)], start_new_session=True)
    deadline = time.monotonic() + 30
    while not (spec.workdir / "stdout").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert read_exit_code(spec.workdir) == 143
    # the child was killed with the wrapper
    assert subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).stdout == b""


def test_log_tail_keeps_only_the_last_lines(tmp_path):
    spec = _spec(tmp_path, "bash", "-c", "for i in $(seq 1 100); do echo line$i >&2; done; exit 1")
    _run(write_wrapper(spec))
    tail = log_tail(spec.workdir, lines=5)
    assert "line100" in tail and "line96" in tail and "line95" not in tail


def test_exit_code_is_none_before_the_job_ran(tmp_path):
    assert read_exit_code(tmp_path) is None
    (tmp_path / "exit_code").write_text("garbage")
    assert read_exit_code(tmp_path) is None


def test_bad_env_name_and_empty_argv_are_refused(tmp_path):
    with pytest.raises(ValueError, match="environment variable"):
        render_wrapper(_spec(tmp_path, "true", env={"BAD-NAME": "x"}))
    with pytest.raises(ValueError, match="argv is empty"):
        render_wrapper(_spec(tmp_path))
