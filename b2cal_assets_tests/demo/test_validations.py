"""The validation scripts read a job's outputdb and write PNG plots, passing only good payloads."""

from __future__ import annotations

import pytest

from b2cal_assets.caf.localdb import write_outputdb
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
    result = script.validation.run_validation(job, None, IoV(1, 1, -1, -1))
    assert result["passed"], result["summary"]
    assert len(result["plots"]) == len(script.settings.produced_payloads)
    for plot in result["plots"]:
        assert plot.startswith(str(job / "validation"))
        with open(plot, "rb") as handle:
            assert handle.read(8) == PNG_MAGIC
    assert all(
        value <= max(truth.TOLERANCES[key.split(".")[0].split("[")[0]].values())
        for key, value in result["metrics"].items()
    )


def test_validation_fails_nominal_and_missing_payloads(demo_scripts, tmp_path):
    script = demo_scripts["caf_vxdcdc_alignment"]
    write_outputdb(
        tmp_path / "outputdb", [], [("VXDAlignment", IoV(1, 1, -1, -1), truth.NOMINAL["VXDAlignment"])]
    )
    result = script.validation.run_validation(tmp_path, None, IoV(1, 1, -1, -1))
    assert not result["passed"]
    assert "VXDAlignment" in result["summary"] and "CDCAlignment missing" in result["summary"]
    assert result["metrics"]["VXDAlignment.shift"] == pytest.approx(70.0)
    assert (tmp_path / "validation" / "VXDAlignment.png").read_bytes()[:8] == PNG_MAGIC
