"""The wrapper keeps the job's output and exit code in its directory, also when it is killed."""

import os
import signal
import subprocess
import time

import pytest

from b2cal_assets.backends.base import JobSpec
from b2cal_assets.backends.wrapper import (
    JobTimes,
    log_tail,
    read_exit_code,
    read_job_times,
    render_wrapper,
    write_wrapper,
)


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


def test_the_job_records_its_own_start_and_end_next_to_its_exit_code(tmp_path):
    spec = _spec(tmp_path, "sleep", "0.2")
    (spec.workdir / "times").write_text("1.0 2.0\n")  # a stale try's
    before = time.time()
    _run(write_wrapper(spec))
    after = time.time()
    times = read_job_times(spec.workdir)
    assert before <= times.started_at <= times.finished_at <= after
    assert times.duration_s >= 0.2  # the command's run is inside the recorded span
    assert not (spec.workdir / "times.tmp").exists()


def test_a_running_job_has_a_start_and_no_end_yet(tmp_path):
    spec = _spec(tmp_path, "sleep", "60")
    proc = subprocess.Popen(["bash", str(write_wrapper(spec))], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while read_job_times(spec.workdir).started_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        times = read_job_times(spec.workdir)
        assert times.started_at is not None and times.finished_at is None and times.duration_s is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    assert read_job_times(spec.workdir).finished_at is not None  # a killed job has its end too


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1796409619,848978 1796409620,054241\n", JobTimes(1796409619.848978, 1796409620.054241)),
        ("1796409619\n", JobTimes(1796409619.0, None)),
        ("garbage here\n", JobTimes(None, None)),
        ("", JobTimes(None, None)),
    ],
)
def test_times_in_any_locale_or_half_written_are_read_without_error(tmp_path, text, expected):
    (tmp_path / "times").write_text(text)
    assert read_job_times(tmp_path) == expected


def test_a_job_that_never_ran_has_no_times(tmp_path):
    assert read_job_times(tmp_path / "missing") == JobTimes(None, None)
