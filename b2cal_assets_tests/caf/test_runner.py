"""A calibration script run end to end on the local backend: iterations, run-by-run, failure, resume."""

import json
import textwrap

import numpy as np
import pytest

from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.backends.manager import RetryPolicy, SubmitPolicy
from b2cal_assets.caf.payload_io import md5sum, read_payload
from b2cal_assets.caf.runner import CalibrationFailed, CalibrationJob, WorkdirInUse, run_calibration_job
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import parse_database_txt

SCRIPT = textwrap.dedent(
    '''
    """Tiny calibration: an offset that iterates until converged, then per-run means merged run by run."""
    import os
    from pathlib import Path

    import numpy as np

    from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
    from caf.strategies import SequentialRunByRun
    from caf.utils import ExpRun
    from prompt import CalibrationSettings

    settings = CalibrationSettings(
        name="tiny",
        expert_username="alice",
        description="test calibration",
        input_data_formats=["raw"],
        input_data_names=["hlt_mumu"],
        input_data_filters={"hlt_mumu": []},
        expert_config={"tolerance": 1e-6, "min_entries": 50},
    )

    HERE = Path(__file__).parent
    EDGES = np.linspace(-10, 10, 21)


    def _offset(conditions):
        return float(conditions.get("Offset")["offset"]) if "Offset" in conditions else 0.0


    def collect(path, ctx):
        with open(HERE / "calls.log", "a") as log:
            log.write(f"{ctx.iteration} {Path(path).name}\\n")
        if (HERE / "FAIL").exists() and Path(path).name == (HERE / "FAIL").read_text().strip():
            print(f"cannot read {path}", flush=True)
            raise OSError(f"simulated broken file {path}")
        values = np.load(path) - _offset(ctx.conditions)
        hist, _ = np.histogram(values, EDGES)
        return {"hist": hist, "sum": np.array([values.sum()]), "count": np.array([len(values)])}


    def offset_algorithm(data, ctx):
        old = _offset(ctx.conditions)
        residual = float(data["sum"][0] / data["count"][0])
        status = AlgorithmStatus.OK if abs(residual) < ctx.expert_config["tolerance"] else AlgorithmStatus.ITERATE
        return AlgorithmResult(status, {"Offset": {"offset": old + residual, "hist": data["hist"]}})


    def run_mean_algorithm(data, ctx):
        if data["count"][0] < ctx.expert_config["min_entries"]:
            return AlgorithmResult(AlgorithmStatus.NOT_ENOUGH_DATA, message=f"{data['count'][0]} entries")
        return AlgorithmResult(
            AlgorithmStatus.OK,
            {"RunMean": {"mean": data["sum"][0] / data["count"][0], "count": data["count"][0],
                         "offset_seen": _offset(ctx.conditions)}},
        )


    def get_calibrations(input_data, **kwargs):
        files = {path: ExpRun(iov.exp_low, iov.run_low) for path, iov in input_data["hlt_mumu"].items()}
        return [
            Calibration(
                name="offset", collector=collect, algorithm=offset_algorithm, input_files=files,
                payload_names=("Offset",), max_collector_jobs=3,
            ),
            Calibration(
                name="perrun", collector=collect, algorithm=run_mean_algorithm, input_files=files,
                payload_names=("RunMean",), strategy=SequentialRunByRun, max_files_per_collector_job=3,
            ),
        ]
    '''
)

# entries per run: run 2 and run 5 are too small alone (min_entries = 50)
RUN_SIZES = {1: (60, 40), 2: (20,), 3: (30,), 4: (100,), 5: (10,)}


@pytest.fixture
def tiny(tmp_path):
    caldir = tmp_path / "calibrations"
    caldir.mkdir()
    (caldir / "tiny.py").write_text(SCRIPT)
    rng = np.random.default_rng(7)
    files, values = {}, {}
    for run, sizes in RUN_SIZES.items():
        for i, size in enumerate(sizes):
            data = rng.normal(1.5, 1.0, size)
            path = tmp_path / "data" / f"r{run}_{i}.npy"
            path.parent.mkdir(exist_ok=True)
            np.save(path, data)
            files[str(path)] = IoV(0, run, 0, run)
            values.setdefault(run, []).append(data)
    job = CalibrationJob(
        script_file=caldir / "tiny.py",
        calibrations_dir=caldir,
        calibration_script_name="tiny",
        input_data={"hlt_mumu": files},
        requested_iov=IoV(0, 1, -1, -1),
        expert_config={"tolerance": 1e-6, "min_entries": 50},
        workdir=tmp_path / "work",
    )
    all_values = {run: np.concatenate(v) for run, v in values.items()}
    return job, caldir, all_values


def _run(job, **kw):
    return run_calibration_job(
        job,
        LocalBackend(max_processes=2),
        submit_policy=SubmitPolicy(poll_interval_s=0.05, forgotten_grace_s=1),
        retry_policy=RetryPolicy(max_retries=0),
        **kw,
    )


def _calls(caldir):
    path = caldir / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


def test_iterates_then_merges_runs_and_writes_the_outputdb(tiny):
    job, _, values = tiny
    events = []
    outcome = _run(job, progress=events.append)
    everything = np.concatenate(list(values.values()))

    # the offset calibration converged in a second iteration; its payload is the mean of all data
    assert outcome.iterations == {"offset": 2, "perrun": 1}
    offset_entries = [p for p in outcome.payloads if p.name == "Offset"]
    assert len(offset_entries) == 1
    assert offset_entries[0].iov == IoV(0, 1, -1, -1)
    offset = read_payload(offset_entries[0].file)
    assert offset["offset"] == pytest.approx(everything.mean())
    assert offset["hist"].sum() == len(everything)

    # run by run: run 2 merges with 3, leftover run 5 folds into run 4's set
    run_means = [p for p in outcome.payloads if p.name == "RunMean"]
    assert [p.iov for p in run_means] == [IoV(0, 1, 0, 1), IoV(0, 2, 0, 3), IoV(0, 4, -1, -1)]
    assert [p.revision for p in run_means] == [1, 2, 3]
    for payload, runs in zip(run_means, [(1,), (2, 3), (4, 5)], strict=True):
        constants = read_payload(payload.file)
        data = np.concatenate([values[r] for r in runs])
        assert constants["count"] == len(data)
        assert constants["mean"] == pytest.approx(data.mean() - everything.mean())
        # the later calibration saw the earlier one's payload as a condition
        assert constants["offset_seen"] == pytest.approx(everything.mean())
        assert payload.checksum == md5sum(payload.file)

    # database.txt lists exactly these payloads and the files are where it says
    db = outcome.outputdb
    entries = parse_database_txt((db / "database.txt").read_text())
    assert [(e.name, e.revision, e.iov) for e in entries] == [
        (p.name, p.revision, p.iov) for p in outcome.payloads
    ]
    assert all((db / f"dbstore_{e.name}_rev_{e.revision}.root").exists() for e in entries)

    # the framework's layout, with 6 files in 3 collector subjobs for "offset"
    assert sorted(p.name for p in (job.workdir / "offset" / "0").iterdir()) == [
        "algorithm_output",
        "collector_input",
        "collector_output",
    ]
    assert len([s for s in outcome.subjobs if s.calibration == "offset" and s.iteration == 0]) == 3
    assert all(s.state == "done" and s.exit_code == 0 for s in outcome.subjobs)
    assert {e["phase"] for e in events} >= {"collector", "algorithm", "iterate", "completed"}
    assert any("jobs" in e for e in events)


def test_failing_collector_names_the_subjob_and_its_log_then_resumes(tiny):
    job, caldir, _ = tiny
    (caldir / "FAIL").write_text("r4_0.npy")
    with pytest.raises(CalibrationFailed) as info:
        _run(job)
    err = info.value
    assert err.calibration == "offset" and err.iteration == 0
    assert err.subjob == "offset.0.2"  # files are ordered by run: run 4 is in the last of 3 subjobs
    assert err.exit_code == 1
    message = str(err)
    assert "offset.0.2" in message and "exit code 1" in message
    assert "simulated broken file" in message and "r4_0.npy" in message
    first_calls = _calls(caldir)

    # the broken file is fixed: the rerun runs only the failed subjob again, then carries on
    (caldir / "FAIL").unlink()
    outcome = _run(job)
    rerun = _calls(caldir)[len(first_calls) :]
    offset_iteration0 = rerun[: rerun.index(next(c for c in rerun if c.startswith("1 ")))]
    assert sorted(offset_iteration0) == ["0 r4_0.npy", "0 r5_0.npy"]
    assert outcome.iterations == {"offset": 2, "perrun": 1}
    # tries counts submissions by this run: the two subjobs that had finished were found done, not rerun
    assert [s.tries for s in outcome.subjobs if s.calibration == "offset" and s.iteration == 0] == [0, 0, 1]


def test_rerun_after_a_crash_skips_finished_work(tiny):
    job, caldir, _ = tiny

    def crash(event):
        if event["calibration"] == "perrun" and event["phase"] == "algorithm":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(job, progress=crash)
    state = json.loads((job.workdir / "state.json").read_text())
    assert state["calibrations"]["offset"]["status"] == "completed"
    before = len(_calls(caldir))
    events = []
    outcome = _run(job, progress=events.append)
    # no collector ran again: offset was completed, perrun's subjobs had all finished
    assert len(_calls(caldir)) == before
    assert any(e["phase"] == "skipped" and e["calibration"] == "offset" for e in events)
    assert [p.name for p in outcome.payloads] == ["Offset", "RunMean", "RunMean", "RunMean"]


def test_max_iterations_limits_the_loop(tiny):
    job, _, _ = tiny
    job.max_iterations = 1
    outcome = _run(job)
    assert outcome.iterations["offset"] == 1
    assert not (job.workdir / "offset" / "1").exists()


def test_a_different_job_in_the_same_workdir_is_refused(tiny):
    job, _, _ = tiny
    _run(job)
    job.expert_config = {"tolerance": 1.0, "min_entries": 50}
    with pytest.raises(WorkdirInUse, match="different calibration job"):
        _run(job)


def test_not_enough_data_in_all_runs_fails_with_a_clear_message(tiny):
    job, _, _ = tiny
    job.expert_config = {"tolerance": 1e-6, "min_entries": 10_000}
    with pytest.raises(CalibrationFailed, match=r"perrun.*not enough data even with all 5 run"):
        _run(job)
