"""The framework's strategies run by b2cal's runner: SimpleRunByRun and SequentialBoundaries; a
calibration built for the framework (basf2 collector, C++ algorithm) fails clearly."""

import textwrap

import numpy as np
import pytest

from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.backends.manager import RetryPolicy, SubmitPolicy
from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.caf.runner import CalibrationFailed, CalibrationJob, run_calibration_job
from b2cal_assets.domain.iov import IoV

SCRIPT = textwrap.dedent(
    '''
    """Per-run means with the strategy the expert_config names."""
    import basf2
    import numpy as np
    from ROOT import Belle2

    from caf import strategies
    from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
    from caf.utils import ExpRun
    from prompt import CalibrationSettings

    settings = CalibrationSettings(
        name="Run means", expert_username="alice", subsystem="example", description="test",
        input_data_formats=["raw"], input_data_names=["hlt_mumu"],
        expert_config={"strategy": "SingleIOV", "min_entries": 50, "payload_boundaries": [], "framework": False},
    )


    def collect(path, ctx):
        values = np.load(path)
        return {"sum": np.array([values.sum()]), "count": np.array([len(values)])}


    def mean(data, ctx):
        if data["count"][0] < ctx.expert_config["min_entries"]:
            return AlgorithmResult(AlgorithmStatus.NOT_ENOUGH_DATA, message=f"{data['count'][0]} entries")
        return AlgorithmResult(AlgorithmStatus.OK, {"RunMean": {"count": data["count"][0]}})


    def get_calibrations(input_data, **kwargs):
        config = kwargs["expert_config"]
        basf2.B2INFO("building", config["strategy"])
        if config["framework"]:
            return [Calibration("framework style", collector="CaTest", algorithms=[Belle2.TestCalibrationAlgorithm()])]
        files = {path: ExpRun(iov.exp_low, iov.run_low) for path, iov in input_data["hlt_mumu"].items()}
        cal = Calibration(name="means", collector=collect, algorithm=mean, input_files=files, payload_names=("RunMean",))
        cal.strategies = getattr(strategies, config["strategy"])
        return [cal]
    '''
)

RUN_SIZES = {1: 60, 2: 70, 3: 20, 4: 80, 5: 90}


@pytest.fixture
def job(tmp_path):
    caldir = tmp_path / "calibrations"
    caldir.mkdir()
    (caldir / "caf_means.py").write_text(SCRIPT)
    files = {}
    for run, size in RUN_SIZES.items():
        path = tmp_path / "data" / f"r{run}.npy"
        path.parent.mkdir(exist_ok=True)
        np.save(path, np.ones(size))
        files[str(path)] = IoV(0, run, 0, run)

    def make(**config):
        return CalibrationJob(
            script_file=caldir / "caf_means.py",
            calibrations_dir=caldir,
            calibration_script_name="Run means",
            input_data={"hlt_mumu": files},
            requested_iov=IoV(0, 1, -1, -1),
            expert_config={"min_entries": 50, "payload_boundaries": [], "framework": False, **config},
            workdir=tmp_path / f"work_{len(list(tmp_path.iterdir()))}",
        )

    return make


def _run(job):
    return run_calibration_job(
        job,
        LocalBackend(max_processes=2),
        submit_policy=SubmitPolicy(poll_interval_s=0.05, forgotten_grace_s=1),
        retry_policy=RetryPolicy(max_retries=0),
    )


def test_sequential_boundaries_one_payload_per_interval(job):
    outcome = _run(job(strategy="SequentialBoundaries", payload_boundaries=[[0, 3], [0, 5]]))
    assert [p.iov for p in outcome.payloads] == [IoV(0, 1, 0, 2), IoV(0, 3, 0, 4), IoV(0, 5, -1, -1)]
    assert [int(read_payload(p.file)["count"]) for p in outcome.payloads] == [130, 100, 90]


def test_simple_run_by_run_fails_on_a_run_with_too_little_data(job):
    with pytest.raises(CalibrationFailed, match=r"not enough data in run .*3.*SimpleRunByRun.*20 entries"):
        _run(job(strategy="SimpleRunByRun"))
    outcome = _run(job(strategy="SimpleRunByRun", min_entries=10))
    assert [p.iov for p in outcome.payloads] == [
        IoV(0, 1, 0, 1), IoV(0, 2, 0, 2), IoV(0, 3, 0, 3), IoV(0, 4, 0, 4), IoV(0, 5, -1, -1),
    ]


def test_a_calibration_built_for_the_framework_says_it_needs_it(job):
    with pytest.raises(CalibrationFailed) as info:
        _run(job(strategy="SingleIOV", framework=True))
    message = str(info.value)
    assert "calibration 'Run means': needs the framework (basf2)" in message
    assert "ROOT.Belle2.TestCalibrationAlgorithm is a C++ class" in message
    assert "Traceback" not in message
