"""The demo's validation scripts, run the framework's way (a program with the argv contract), read a
job's outputdb and write PNG plots in their working directory, passing only good payloads."""

from __future__ import annotations

import json

import pytest

from b2cal_assets.caf.localdb import write_outputdb
from b2cal_assets.caf.validation_job import run_validation_job
from b2cal_assets.demo import truth
from b2cal_assets.domain.iov import IoV
from b2cal_assets_tests.demo.test_calibrations import CALIBRATIONS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", CALIBRATIONS)
def test_validation_plots_the_calibrated_payloads(chain, name, tmp_path):
    job = tmp_path / name
    new = [(p, s.iov, c) for s in chain.results[name].sets for p, c in s.payloads.items()]
    write_outputdb(job / "outputdb", [], new)
    script = chain.scripts[name]
    run = run_validation_job(
        script.validation, job_path=job, input_data_path=job / "input_data.json",
        requested_iov=IoV(1, 1, -1, -1), workdir=tmp_path / "validation",
    )
    assert run.exit_code == 0, run.log_tail()
    assert run.passed, run.summary
    assert len(run.plots) == len(script.settings.produced_payloads)
    for plot in run.plots:
        assert plot.parent == tmp_path / "validation" / "plots"  # relative to the working directory
        assert plot.read_bytes()[:8] == PNG_MAGIC
    assert [p.relative_to(run.workdir).as_posix() for p in run.downloaded] == [
        "download_files/outputdb/database.txt"
    ]
    assert all(
        value <= max(truth.TOLERANCES[key.split(".")[0].split("[")[0]].values())
        for key, value in run.result["metrics"].items()
    )


def test_validation_fails_nominal_and_missing_payloads(demo_scripts, tmp_path):
    script = demo_scripts["caf_vxdcdc_alignment"]
    write_outputdb(
        tmp_path / "job" / "outputdb", [], [("VXDAlignment", IoV(1, 1, -1, -1), truth.NOMINAL["VXDAlignment"])]
    )
    run = run_validation_job(
        script.validation, job_path=tmp_path / "job", input_data_path="input_data.json",
        requested_iov=IoV(1, 1, -1, -1), workdir=tmp_path / "val",
    )
    assert run.exit_code == 1 and not run.passed
    assert "VXDAlignment" in run.summary and "CDCAlignment missing" in run.summary
    assert json.loads((tmp_path / "val" / "validation_result.json").read_text())["passed"] is False
    assert run.result["metrics"]["VXDAlignment.shift"] == pytest.approx(70.0)
    assert (tmp_path / "val" / "plots" / "VXDAlignment.png").read_bytes()[:8] == PNG_MAGIC
