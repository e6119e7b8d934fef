"""`b2cal demo` as `make demo` runs it: the synthetic detector's 13 calibrations through the real
daemon, every one signed off with constants within the validation tolerances."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

B2CAL = Path(sys.executable).with_name("b2cal")
CALIBRATIONS = [
    "caf_cdc_tracking",
    "caf_cdc_badwires",
    "caf_svd_time",
    "caf_top_pre",
    "caf_vxdcdc_alignment",
    "caf_klm_alignment",
    "caf_cdcdedx_electron",
    "caf_cdcdedx_hadron",
    "caf_ecl_energy",
    "caf_top",
    "caf_beamspot",
    "caf_boostvector",
    "caf_ecms",
]


def test_demo_signs_off_every_calibration_within_tolerance(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B2CAL_", "DAGSTER_"))}
    env["B2CAL_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [str(B2CAL), "demo", "--fresh", "--processings", "1", "--runs", "6", "--timeout", "1500"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert "RESULT: every calibration signed off, constants within tolerance" in log
    table = log[log.index("processing prompt_demo_1\n") :]
    for name in CALIBRATIONS:
        (row,) = [line for line in table.splitlines() if line.startswith(name + " ")]
        assert "signed_off" in row and "(tolerance" in row and "ok)" in row, row
    # the live display reported the loop as it went, and the daemon was stopped at the end
    assert "-> running" in log and "-> signed_off" in log
    assert not processes_with_home(env["B2CAL_HOME"]), "the demo left Dagster processes running"


def processes_with_home(home: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"B2CAL_HOME={home}".encode() in environ:
                found.append(int(proc.name))
    return found
