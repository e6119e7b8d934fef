"""An attempt run with the framework: one b2caf-prompt-run job (the tests' stand-in) on the backend,
the framework's inputs written in its form, its outputdb taken back like any attempt's."""

import json
import os
import sys
from pathlib import Path

import pytest

from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.backends.manager import SubmitPolicy
from b2cal_assets.caf.framework_runner import FrameworkRunner, framework_argv, run_framework_job
from b2cal_assets.caf.payload_io import md5sum, read_payload
from b2cal_assets.caf.runner import CalibrationFailed, CalibrationJob
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import parse_database_txt
from b2cal_assets_tests.caf import test_prompt_run

expert = test_prompt_run.expert  # the expert's directory: script, runs of ROOT files, input files
STAND_IN_BIN = Path(__file__).resolve().parents[1] / "fixtures" / "framework_bin"


@pytest.fixture
def framework_path(expert, monkeypatch):
    """The stand-in b2caf-prompt-run on PATH, with this interpreter first (it runs b2cal's runner);
    global tags kept in the expert's $B2CAL_HOME/globaltags."""
    monkeypatch.setenv("B2CAL_HOME", str(expert))
    monkeypatch.setenv("PATH", os.pathsep.join([str(STAND_IN_BIN), str(Path(sys.executable).parent),
                                                os.environ["PATH"]]))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))


def _job(expert, **changes):
    files = {}
    for name, runs in json.loads((expert / "input_data.json").read_text()).items():
        for directory, (exp, run) in runs:
            for path in sorted(Path(directory).glob("**/*.root")):
                files.setdefault(name, {})[str(path)] = IoV(exp, run, exp, run)
    upstream = expert / "upstream_outputdb"
    upstream.mkdir(exist_ok=True)
    (upstream / "database.txt").write_text("")
    values = dict(
        script_file=expert / "calibrations" / "caf_hit_time.py",
        calibrations_dir=expert / "calibrations",
        calibration_script_name="Hit time/offset",
        input_data=files,
        requested_iov=IoV(1, 3, -1, -1),
        workdir=expert / "attempt_1",
        expert_config={"max_files_per_run": 5, "min_entries": 50},
        database_chain=[expert / "globaltags" / "data_prompt", upstream],
        max_collector_jobs=2,
    )
    (expert / "globaltags" / "data_prompt").mkdir(parents=True, exist_ok=True)
    (expert / "globaltags" / "data_prompt" / "database.txt").write_text("")
    return CalibrationJob(**{**values, **changes})


RUNNER = FrameworkRunner(setup_commands=("export B2CAL_SITE_SETUP=done",), heartbeat_s=1)


def _run(job, runner, events=None):
    runner = FrameworkRunner(**{**runner.__dict__, "globaltags_root": job.workdir.parent / "globaltags"})
    return run_framework_job(job, LocalBackend(max_processes=2), runner,
                             submit_policy=SubmitPolicy(poll_interval_s=0.2, forgotten_grace_s=2),
                             progress=(events.append if events is not None else None))


def test_one_job_runs_the_framework_and_its_outputdb_becomes_the_attempts(expert, framework_path):
    events = []
    outcome = _run(_job(expert), RUNNER, events)
    run_dir = expert / "attempt_1" / "framework"
    config = json.loads((run_dir / "caf_config.json").read_text())
    assert config == {
        "caf_script": "caf_hit_time.py", "database_chain": ["data_prompt"], "backend_args": {},
        "requested_iov": [1, 3, -1, -1], "expert_config": {"max_files_per_run": 5, "min_entries": 50},
        "testing_payloads": [str((expert / "upstream_outputdb" / "database.txt").resolve())],
    }
    layout = json.loads((run_dir / "input_data.json").read_text())
    assert [(Path(d).name, er) for d, er in layout["hlt_mumu"]] == [
        ("e0001_r00003", [1, 3]), ("e0001_r00004", [1, 4]), ("e0001_r00005", [1, 5]),
    ]
    assert len(list(Path(layout["hlt_mumu"][0][0]).glob("*.root"))) == 2  # each run's files under its own directory
    entries = parse_database_txt((outcome.outputdb / "database.txt").read_text())
    assert [(e.name, e.iov) for e in entries] == [("HitTimeOffset", IoV(1, 3, 1, 3)), ("HitTimeOffset", IoV(1, 4, -1, -1))]
    assert outcome.outputdb == expert / "attempt_1" / "outputdb"
    assert all(p.checksum == md5sum(p.file) and p.file.parent == outcome.outputdb for p in outcome.payloads)
    assert float(read_payload(outcome.payloads[0].file)["mean"]) == pytest.approx(3.0)
    assert list(outcome.payloads_by_calibration) == ["hit_time"] and outcome.iterations == {"hit_time": 1}
    assert (run_dir / "caf_outputdb_results" / "hit_time" / "database.txt").is_file()
    assert any("the framework's CAF: hit_time: iteration 0" in e["message"] for e in events)


def test_the_command_line_is_the_frameworks():
    job = CalibrationJob(script_file=Path("caf_x.py"), calibration_script_name="X", input_data={},
                         requested_iov=IoV(1, 1, -1, -1), workdir=Path("w"), max_files_per_collector_job=3)
    argv = framework_argv(job, FrameworkRunner(backend="HTCondor", setup_commands=("source /cvmfs/b2setup",),
                                               heartbeat_s=30))
    assert argv == ["bash", "-c", "source /cvmfs/b2setup && exec b2caf-prompt-run HTCondor caf_config.json "
                    "input_data.json --heartbeat 30 --max-files-per-subjob 3 --overwrite-working-dir"]
    with pytest.raises(ValueError, match="not one of b2caf-prompt-run's Local, LSF, PBS, HTCondor"):
        FrameworkRunner(backend="Slurm")


def test_a_failed_framework_job_shows_its_log_tail(expert, framework_path):
    with pytest.raises(CalibrationFailed) as info:
        _run(_job(expert, expert_config={"max_files_per_run": 5, "min_entries": 10_000}), RUNNER)
    message = str(info.value)
    assert "b2caf-prompt-run ended failed with exit code 1" in message
    assert "not enough data even with all 3 run(s) merged" in message  # the job's own log tail


def test_exit_0_without_an_outputdb_is_a_failure(expert, framework_path):
    with pytest.raises(CalibrationFailed, match=r"exited 0 but left no caf_outputdb_results/<calibration>/database\.txt"):
        _run(_job(expert), FrameworkRunner(command="true", heartbeat_s=1))


def test_a_resumed_run_takes_the_output_of_the_job_that_ended_0_without_running_it_again(expert, framework_path):
    first = _run(_job(expert), RUNNER)
    again = _run(_job(expert), FrameworkRunner(command="false", heartbeat_s=1))  # would fail if it ran
    assert [(p.name, p.revision, p.checksum) for p in again.payloads] == [
        (p.name, p.revision, p.checksum) for p in first.payloads
    ]


def test_a_new_job_never_passes_an_earlier_jobs_outputdb_for_its_own(expert, framework_path):
    _run(_job(expert), RUNNER)
    (expert / "attempt_1" / "framework" / "exit_code").write_text("1\n")  # as if that job had failed
    with pytest.raises(CalibrationFailed, match="exited 0 but left no"):
        _run(_job(expert), FrameworkRunner(command="true", heartbeat_s=1))
    # and after that failure a restart in the same directory runs the framework again
    outcome = _run(_job(expert), RUNNER)
    assert outcome.payloads and (expert / "attempt_1" / "framework" / "caf_outputdb_results").is_dir()
