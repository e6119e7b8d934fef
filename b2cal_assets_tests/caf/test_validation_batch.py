"""Validation as ONE batch job at the site: on this machine, on the real Slurm, and at a remote test
centre over SSH; its results (one tarball) come back and land in the payload store whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from b2cal_assets.backends.base import BackendError
from b2cal_assets.backends.commands import SubprocessRunner
from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.backends.manager import SubmitPolicy
from b2cal_assets.backends.remote import remote_backend
from b2cal_assets.backends.slurm import SlurmBackend
from b2cal_assets.backends.ssh import SshRunner, SshTarget
from b2cal_assets.caf.scripts import load_scripts
from b2cal_assets.caf.validation_batch import RESULTS_TAR, ValidationJobFailed, ValidationJobs
from b2cal_assets.defs.checks import _validation_result
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.site_runner import RunnerKind
from b2cal_assets.loop.records import PayloadView
from b2cal_assets.loop.validation import run_validation_script
from b2cal_assets_tests.caf.test_validation_job import VALIDATION
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
from b2cal_assets_tests.domain.scriptdir import calibration, write
from b2cal_assets_tests.loop.helpers import fake_run, toy_loop

STAND_IN_BIN = Path(__file__).resolve().parents[1] / "fixtures" / "framework_bin"
FAST = SubmitPolicy(poll_interval_s=0.2, forgotten_grace_s=30)


def _setup(tmp_path: Path):
    """A framework-style layout (prompt/calibrations, prompt/validations) and a finished job's directory."""
    write(tmp_path / "prompt" / "calibrations", "caf_cdc.py", calibration("CDC Tracking", subsystem="cdc"))
    write(tmp_path / "prompt" / "validations", "cdc_tracking_validation.py", VALIDATION)
    job = tmp_path / "payloads" / "attempt_1"
    (job / "calibration_results" / "tz0" / "0").mkdir(parents=True)
    (job / "calibration_results" / "tz0" / "0" / "stdout").write_text("collector log\n")
    return load_scripts(tmp_path / "prompt" / "calibrations")["CDC Tracking"].validation, job


def _run(jobs: ValidationJobs, validation, job: Path, tmp_path: Path, **config):
    return jobs.run(
        validation,
        job_path=job,
        requested_iov=IoV(26, 1, -1, -1),
        expert_config=config,
        workdir=tmp_path / "work" / "validation",
        results_dir=job / "validation_run",
    )


def _assert_results(run, job: Path, seen_job_path: str) -> None:
    assert run.exit_code == 0 and run.passed, run.log_tail()
    results = job / "validation_run"
    assert run.workdir == results
    assert run.plots == [results / "plots" / "allData" / "t0.png"]
    assert [p.relative_to(results).as_posix() for p in run.downloaded] == [
        "download_files/calibration_results/tz0/0/stdout"
    ]
    seen = json.loads((results / "seen.json").read_text())
    assert seen["job_path"] == seen_job_path
    assert seen["requested_iov"] == [26, 1, -1, -1]
    assert seen["expert_config"] == {"bins": 5, "fail": False}
    assert "[INFO] validating" in run.log.read_text()


def test_a_validation_job_on_this_machine_leaves_its_results_in_the_payload_store(tmp_path):
    validation, job = _setup(tmp_path)
    run = _run(ValidationJobs(LocalBackend(), site="here", submit_policy=FAST), validation, job, tmp_path, bins=5)
    _assert_results(run, job, str(job.resolve()))
    workdir = tmp_path / "work" / "validation"
    config = json.loads((workdir / "validation_config.json").read_text())
    assert config["validation_script"] == "cdc_tracking_validation.py" and config["job_path"] == str(job)
    assert (workdir / RESULTS_TAR).is_file() and (workdir / "stdout").is_file()


def test_a_failing_script_is_a_failed_verdict_with_its_log_and_a_wrong_key_is_refused(tmp_path):
    validation, job = _setup(tmp_path)
    jobs = ValidationJobs(LocalBackend(), submit_policy=FAST)
    run = _run(jobs, validation, job, tmp_path, fail=True)
    assert not run.passed and run.exit_code != 0
    assert "the t0 distribution is empty" in run.log.read_text()
    assert (job / "validation_run" / "validation.log").is_file()
    with pytest.raises(Exception, match="binz"):
        _run(jobs, validation, job, tmp_path, binz=3)


def test_a_job_that_leaves_no_results_fails_with_its_log_tail(tmp_path):
    validation, job = _setup(tmp_path)
    (job / "validation_run").mkdir()
    (job / "validation_run" / "old.png").write_text("an earlier run's plot")
    jobs = ValidationJobs(
        LocalBackend(), site="kek", runner=RunnerKind.FRAMEWORK, framework_setup=("source /no/such/b2setup",),
        submit_policy=FAST,
    )
    with pytest.raises(ValidationJobFailed, match=r"at site kek ended failed .* left no validation_results/") as err:
        _run(jobs, validation, job, tmp_path)
    assert "/no/such/b2setup" in err.value.log_tail
    assert (job / "validation_run" / "old.png").is_file()  # nothing half-written over the last results


@pytest.fixture
def framework_on_path(monkeypatch):
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(STAND_IN_BIN), str(Path(sys.executable).parent), os.environ["PATH"]])
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))


def test_a_framework_site_runs_b2val_prompt_run_after_its_setup(tmp_path, framework_on_path):
    validation, job = _setup(tmp_path)
    jobs = ValidationJobs(
        LocalBackend(), runner=RunnerKind.FRAMEWORK, framework_setup=("export B2CAL_SETUP=done",),
        submit_policy=FAST,
    )
    run = _run(jobs, validation, job, tmp_path, bins=5)
    _assert_results(run, job, str(job.resolve()))
    argv = (tmp_path / "work" / "validation" / "stdout").read_text()
    assert "[INFO] CDC Tracking:" in argv


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Local", "validation_config.json"], "the following arguments are required: input_data"),
        (["Slurm", "validation_config.json", "in.json"], "invalid choice: 'Slurm'"),
        (["Local", "validation_config.json", "in.json", "--calibrations-dir", "x"], "unrecognized arguments"),
    ],
    ids=["no-input-data", "no-slurm-backend", "b2cal-option"],
)
def test_the_stand_in_takes_the_real_command_line_strictly(tmp_path, framework_on_path, args, message):
    proc = subprocess.run(
        [str(STAND_IN_BIN / "b2val-prompt-run"), *args], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


@pytest.mark.slurm
def test_a_validation_job_on_slurm(tmp_path, slurm_cluster):
    validation, job = _setup(tmp_path)
    backend = SlurmBackend(runner=SubprocessRunner(env=slurm_cluster))
    run = _run(ValidationJobs(backend, site="slurm_site", submit_policy=FAST), validation, job, tmp_path, bins=5)
    _assert_results(run, job, str(job.resolve()))


@pytest.mark.slurm
def test_a_validation_job_at_a_remote_centre_sends_its_results_back(tmp_path, test_hosts):
    host = test_hosts[0]
    ssh = SshRunner(
        SshTarget(host.address, host.user, host.known_hosts, host.port, host.key),
        control_dir=Path("/tmp/b2cal-ssh-tests") / uuid.uuid4().hex[:8],
    )
    remote_root = host.root / f"val_{uuid.uuid4().hex[:8]}"
    backend = remote_backend(SlurmBackend, {"time_limit": "00:05:00"}, ssh, remote_root, python=host.python)
    try:
        validation, job = _setup(tmp_path)
        run = _run(ValidationJobs(backend, site="th1", submit_policy=FAST), validation, job, tmp_path, bins=5)
    finally:
        backend.close()
    # the script read the job's copy at the centre, and the results came back here
    _assert_results(run, job, backend.job_path(job))
    remote_job = Path(backend.job_path(tmp_path / "work" / "validation"))
    assert (remote_job / "validation_results" / "plots" / "allData" / "t0.png").is_file()
    assert (tmp_path / "work" / "validation" / RESULTS_TAR).is_file()
    assert not (tmp_path / "work" / "validation" / "validation_results").exists()  # only the one file


def test_what_the_job_imports_needs_no_pydantic():
    """A remote centre's Python has numpy (and what the scripts import), not b2cal's deployment settings."""
    code = (
        "import sys; sys.modules['pydantic'] = None; sys.modules['dagster'] = None; "
        "import b2cal_assets.caf.val_prompt_run, b2cal_assets.caf.prompt_script, b2cal_assets.demo.validation_report"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slurm
def test_an_unreachable_centre_is_the_backends_error_not_a_verdict(tmp_path, test_hosts):
    host = test_hosts[0]
    ssh = SshRunner(
        SshTarget(host.address, host.user, host.known_hosts, 1, host.key),  # nothing listens on port 1
        control_dir=Path("/tmp/b2cal-ssh-tests") / uuid.uuid4().hex[:8],
        connect_timeout_s=3,
        site="th1",
    )
    backend = remote_backend(SlurmBackend, {}, ssh, host.root / "unreachable", python=host.python)
    validation, job = _setup(tmp_path)
    with pytest.raises(BackendError, match=r"cannot reach .*:1"):
        _run(ValidationJobs(backend, site="th1", submit_policy=FAST), validation, job, tmp_path)
    assert not (job / "validation_run").exists()  # no verdict recorded


class _UnreachableSite(LocalBackend):
    def submit(self, jobs):
        raise BackendError("cannot reach b2th1@10.231.1.2:22: Connection refused\n(after 2 tries)")


class _Service:
    """The loop's answers the validation check asks for: one attempt's payloads and the processing's IoV."""

    def __init__(self, job: Path) -> None:
        self.job = job

    def current_payloads(self, processing, calibration):
        return [PayloadView("ToyA", 1, "0" * 32, IoV(1, 1, 1, 2), str(self.job / "outputdb" / "x.root"))]

    def processing_iov(self, processing):
        return IoV(1, 1, 1, 2)


def test_a_site_that_fails_during_validation_fails_the_check_run_with_one_line_naming_it(tmp_path):
    _validation, job = _setup(tmp_path)
    script = load_scripts(tmp_path / "prompt" / "calibrations")["CDC Tracking"]
    jobs = ValidationJobs(_UnreachableSite(), site="kek", submit_policy=FAST)
    with pytest.raises(dg.Failure) as err:
        _validation_result(_Service(job), "p1", script.name, script, jobs)
    assert err.value.description == "site kek: cannot reach b2th1@10.231.1.2:22: Connection refused (after 2 tries)"
    assert not (job / "validation_run").exists()


class _Counting(LocalBackend):
    """The site's backend, counting the jobs submitted to it."""

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[str] = []

    def submit(self, jobs):
        self.submitted += [j.name for j in jobs]
        return super().submit(jobs)


_KILLED_CHECK_RUN = """
import sys
from pathlib import Path
from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.caf.validation_batch import ValidationJobs
from b2cal_assets_tests.caf.test_validation_batch import FAST, _run, _setup
tmp = Path(sys.argv[1])
validation, job = _setup(tmp)
_run(ValidationJobs(LocalBackend(), submit_policy=FAST), validation, job, tmp, bins=5)
"""


def _live_job_id(state_file: Path) -> str | None:
    try:
        entries = json.loads(state_file.read_text())["jobs"].values()
    except (OSError, ValueError, KeyError):
        return None
    return next((e["job_id"] for e in entries if e.get("job_id")), None)


def test_a_check_run_killed_while_its_job_runs_is_resumed_by_adopting_that_job(tmp_path):
    """The run worker killed (SIGKILL: nothing cancels the job): the next run follows the job it left
    at the site, uses its results and submits nothing; the job's row says so."""
    state_file = tmp_path / "work" / "validation" / "jobs.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, "-c", _KILLED_CHECK_RUN, str(tmp_path)], env=env)
    try:
        for _ in range(1200):  # until the job is in the system (bounded; not a timing assertion)
            if _live_job_id(state_file) is not None or worker.poll() is not None:
                break
            time.sleep(0.05)
        job_id = _live_job_id(state_file)
        assert job_id is not None, "the first run never submitted its validation job"
    finally:
        worker.kill()
        worker.wait()
    validation = load_scripts(tmp_path / "prompt" / "calibrations")["CDC Tracking"].validation
    job = tmp_path / "payloads" / "attempt_1"
    backend, rows = _Counting(), []
    run = ValidationJobs(backend, site="here", submit_policy=FAST).run(
        validation,
        job_path=job,
        requested_iov=IoV(26, 1, -1, -1),
        expert_config={"bins": 5},
        workdir=tmp_path / "work" / "validation",
        results_dir=job / "validation_run",
        record=rows.append,
    )
    assert backend.submitted == []  # adopted, not submitted again
    _assert_results(run, job, str(job.resolve()))
    assert rows[-1]["state"] == "done" and rows[-1]["exit_code"] == 0
    assert rows[-1]["backend_job_id"] == job_id
    assert not state_file.exists()  # used: a later check runs the validation afresh
    again = ValidationJobs(backend, submit_policy=FAST)
    _run(again, validation, job, tmp_path, bins=5)
    assert backend.submitted == ["CDC Tracking.validation"]


def test_a_killed_runs_job_of_other_settings_is_not_adopted(tmp_path):
    validation, job = _setup(tmp_path)
    backend = _Counting()
    jobs = ValidationJobs(backend, submit_policy=FAST)
    _run(jobs, validation, job, tmp_path, bins=5)
    workdir = tmp_path / "work" / "validation"
    # what a killed run of other settings leaves: its state file and finished job
    (workdir / "jobs.json").write_text(json.dumps({"version": 1, "jobs": {}}))
    (workdir / "exit_code").write_text("0\n")
    (workdir / "validation_config.json").write_text("{}")
    run = _run(jobs, validation, job, tmp_path, bins=5)
    assert backend.submitted == ["CDC Tracking.validation"] * 2
    assert run.passed and json.loads((workdir / "validation_config.json").read_text())["expert_config"]["bins"] == 5


def test_the_validation_job_is_a_job_row_of_the_attempt_it_validates(b2cal_home, monkeypatch):
    """``b2cal status --jobs`` lists the validation job beside the collector subjobs."""
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(TOY_SCRIPTS))
    service = toy_loop(b2cal_home, {"p1": range(1, 3)})
    ticket = fake_run(service, "p1", "toy_a", {"ToyA": {"mean": [3.05]}})
    script = service.scripts.calibrations["toy_a"]
    outcome = run_validation_script(
        service, "p1", "toy_a", script, jobs=ValidationJobs(LocalBackend(), site="toy_site", submit_policy=FAST)
    )
    assert outcome.plots, outcome.summary
    (row,) = service.job_rows("p1", "toy_a")
    assert (row.attempt, row.name, row.backend, row.state, row.exit_code, row.tries) == (
        ticket.number, "toy_a.validation", "local", "done", 0, 1,
    )
    assert row.workdir.endswith(f"validation_work/p1/toy_a/attempt_{ticket.number}")
