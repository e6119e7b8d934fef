"""HTCondor backend on outputs in the documented formats of condor_submit, condor_q and condor_history."""

from __future__ import annotations

from pathlib import Path

import pytest

from b2cal_assets.backends.base import BackendError, JobHandle, JobSpec, JobState
from b2cal_assets.backends.htcondor import (
    HTCondorBackend,
    HTCondorOptions,
    condor_status,
    parse_condor_json,
    parse_condor_submit_terse,
    render_submit_description,
)
from b2cal_assets_tests.fixtures.services import ScriptedRunner

DATA = Path(__file__).parent / "data"


def _specs(tmp_path: Path, n: int, **backend_args) -> list[JobSpec]:
    specs = []
    for i in range(n):
        workdir = tmp_path / f"job{i}"
        workdir.mkdir(parents=True)
        specs.append(JobSpec(f"collector_{i}", ("echo", str(i)), workdir, backend_args=backend_args))
    return specs


def _description(submit: str) -> dict[str, str]:
    """The ``key = value`` commands of a submit description (the ``queue`` line apart)."""
    out = {}
    for line in submit.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            out[key] = value
    return out


def test_submit_description_queues_one_job_per_manifest_line_with_site_options(tmp_path):
    options = HTCondorOptions(
        universe="vanilla",
        request_memory="2 GB",
        request_cpus=1,
        extra_lines=('+SingularityImage = "/cvmfs/belle.cern.ch/images/el9"',),
    )
    text = render_submit_description(
        tmp_path / "manifest.txt", options, batch_name="cdc t0", log_dir=tmp_path
    )
    commands = _description(text)
    assert commands["universe"] == "vanilla"
    assert commands["request_memory"] == "2 GB"
    assert commands["initialdir"] == "$(workdir)"
    assert commands["arguments"] == "$(workdir)/run.sh"
    assert commands["batch_name"] == "cdc_t0"
    assert commands["+SingularityImage"] == '"/cvmfs/belle.cern.ch/images/el9"'
    assert text.rstrip().splitlines()[-1] == f"queue workdir from {tmp_path / 'manifest.txt'}"


def test_parse_condor_submit_terse():
    assert parse_condor_submit_terse((DATA / "htcondor_submit_terse.txt").read_text()) == [
        f"8241.{i}" for i in range(5)
    ]
    with pytest.raises(BackendError, match="no job ids"):
        parse_condor_submit_terse("ERROR: Failed to connect to local queue manager\n")


def test_condor_q_json_states_and_hold_reason():
    ads = parse_condor_json((DATA / "htcondor_q.json").read_text())
    statuses = {job_id: condor_status(job_id, ad) for job_id, ad in ads.items()}
    assert statuses["8241.0"].state == JobState.RUNNING
    assert statuses["8241.1"].state == JobState.PENDING
    assert statuses["8241.2"].state == JobState.HELD
    assert "over cgroup memory limit" in statuses["8241.2"].reason
    assert statuses["8241.3"].state == JobState.RUNNING  # transferring output


def test_condor_history_json_exit_codes_signals_and_removal():
    ads = parse_condor_json((DATA / "htcondor_history.json").read_text())
    statuses = {job_id: condor_status(job_id, ad) for job_id, ad in ads.items()}
    assert statuses["8240.0"].state == JobState.DONE and statuses["8240.0"].exit_code == 0
    assert statuses["8240.1"].state == JobState.FAILED and statuses["8240.1"].exit_code == 3
    assert statuses["8240.2"].state == JobState.FAILED and statuses["8240.2"].reason == "killed by signal 9"
    assert statuses["8241.4"].state == JobState.CANCELLED
    assert parse_condor_json("") == {}  # condor_q prints nothing when no job matches


def test_unknown_condor_job_status_raises():
    with pytest.raises(BackendError, match="JobStatus 42"):
        condor_status("1.0", {"ClusterId": 1, "ProcId": 0, "JobStatus": 42})


def test_submit_is_one_condor_submit_for_all_jobs(tmp_path):
    runner = ScriptedRunner({"condor_submit": (0, "8241.0 - 8241.4\n", "")})
    backend = HTCondorBackend(runner=runner, submit_dir=tmp_path / "sub")
    specs = _specs(tmp_path, 5)
    handles = backend.submit(specs)
    assert runner.count("condor_submit") == 1
    assert [h.job_id for h in handles] == [f"8241.{i}" for i in range(5)]
    description = Path(runner.calls[0][-1])
    manifest = description.parent / "manifest.txt"
    assert manifest.read_text().splitlines() == [str(s.workdir) for s in specs]
    assert all((s.workdir / "run.sh").is_file() for s in specs)


def test_a_workdir_condor_cannot_queue_is_refused_before_submitting(tmp_path):
    runner = ScriptedRunner({"condor_submit": (0, "1.0 - 1.0\n", "")})
    workdir = tmp_path / "with space"
    workdir.mkdir()
    with pytest.raises(BackendError, match="space or comma"):
        HTCondorBackend(runner=runner).submit([JobSpec("j", ("true",), workdir)])
    assert runner.calls == []


def test_poll_asks_condor_q_then_condor_history_only_for_jobs_not_in_the_queue(tmp_path):
    runner = ScriptedRunner(
        {
            "condor_q": (0, (DATA / "htcondor_q.json").read_text(), ""),
            "condor_history": (0, (DATA / "htcondor_history.json").read_text(), ""),
        }
    )
    handles = [JobHandle("htcondor", f"8241.{i}", "j", tmp_path) for i in range(5)]
    handles += [
        JobHandle("htcondor", "8240.1", "old", tmp_path),
        JobHandle("htcondor", "8239.0", "gone", tmp_path),
    ]
    statuses = HTCondorBackend(runner=runner).poll(handles)
    assert runner.count("condor_q") == 1 and runner.count("condor_history") == 1
    q_call, history_call = runner.calls
    assert q_call[-3:] == ("8241", "8240", "8239")
    assert history_call[-3:] == ("8241", "8240", "8239")
    assert statuses["8241.2"].state == JobState.HELD
    assert statuses["8241.4"].state == JobState.CANCELLED
    assert statuses["8240.1"].exit_code == 3
    assert "8239.0" not in statuses  # forgotten: the manager decides by the exit_code file


def test_poll_skips_condor_history_when_all_jobs_are_queued(tmp_path):
    runner = ScriptedRunner({"condor_q": (0, (DATA / "htcondor_q.json").read_text(), "")})
    handles = [JobHandle("htcondor", f"8241.{i}", "j", tmp_path) for i in range(4)]
    assert len(HTCondorBackend(runner=runner).poll(handles)) == 4
    assert runner.count("condor_history") == 0


def test_cancel_is_one_condor_rm(tmp_path):
    runner = ScriptedRunner({"condor_rm": (0, "All jobs in cluster 8241 have been marked for removal\n", "")})
    HTCondorBackend(runner=runner).cancel(
        [JobHandle("htcondor", f"8241.{i}", "j", tmp_path) for i in range(3)]
    )
    assert runner.calls == [("condor_rm", "8241.0", "8241.1", "8241.2")]


def test_unknown_settings_are_named():
    with pytest.raises(BackendError, match="unknown HTCondor setting"):
        HTCondorBackend.from_config({"partition": "x"})
    backend = HTCondorBackend.from_config({"universe": "docker", "request_memory": "4 GB"})
    assert backend.options.universe == "docker"
