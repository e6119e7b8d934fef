"""LSF backend against a real cluster: these tests exist only where ``bsub`` is on PATH.

No LSF cluster can be started on the project's CI machines, so there the module defines no tests
(it neither skips nor fails); on an LSF submit host the same checks as for Slurm run.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from b2cal_assets.backends.base import JobHandle, JobSpec, JobState
from b2cal_assets.backends.commands import SubprocessRunner
from b2cal_assets.backends.lsf import LSFBackend

HAVE_LSF = all(shutil.which(c) for c in ("bsub", "bjobs", "bkill"))


def _spec(tmp_path: Path, name: str, script: str) -> JobSpec:
    workdir = tmp_path / name
    workdir.mkdir(parents=True)
    return JobSpec(name, ("bash", "-c", script), workdir)


def _wait(backend, handles, done, timeout_s=600):
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = backend.poll(handles)
        if done(statuses):
            return statuses
        if time.monotonic() > deadline:
            pytest.fail(f"LSF jobs did not get there in {timeout_s} s: {statuses}")
        time.sleep(2)


if HAVE_LSF:
    pytestmark = pytest.mark.slow

    def test_one_array_runs_and_exit_3_is_failed_with_code_3(tmp_path):
        backend = LSFBackend(runner=SubprocessRunner())
        specs = [_spec(tmp_path, "ok", "echo fine"), _spec(tmp_path, "bad", "exit 3")]
        handles = backend.submit(specs)
        assert len({h.job_id.partition("[")[0] for h in handles}) == 1
        statuses = _wait(
            backend, handles, lambda st: len(st) == 2 and all(s.state.finished for s in st.values())
        )
        assert statuses[handles[0].job_id].state == JobState.DONE
        assert statuses[handles[1].job_id].state == JobState.FAILED
        assert statuses[handles[1].job_id].exit_code == 3
        assert (specs[0].workdir / "stdout").read_text() == "fine\n"

    def test_bkill_cancels(tmp_path):
        backend = LSFBackend(runner=SubprocessRunner())
        handles = backend.submit([_spec(tmp_path, "sleeper", "sleep 600")])
        backend.cancel(handles)
        statuses = _wait(backend, handles, lambda st: bool(st) and all(s.state.finished for s in st.values()))
        assert statuses[handles[0].job_id].state == JobState.CANCELLED

    def test_a_job_lsf_does_not_know_gets_no_status(tmp_path):
        backend = LSFBackend(runner=SubprocessRunner())
        assert backend.poll([JobHandle("lsf", "987654321[1]", "ghost", tmp_path)]) == {}
