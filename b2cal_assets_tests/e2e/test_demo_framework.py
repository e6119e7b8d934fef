"""`b2cal demo --runner framework`: the whole demo loop with every attempt run as ONE job of the
framework's b2caf-prompt-run (the tests' stand-in, on PATH only here), every calibration signed off
within tolerance; without the tool on PATH the demo says how to get it, before doing anything."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from b2cal_assets_tests.e2e.test_demo_command import CALIBRATIONS, processes_with_home

pytestmark = pytest.mark.slow

B2CAL = Path(sys.executable).with_name("b2cal")
STAND_IN_BIN = Path(__file__).resolve().parents[1] / "fixtures" / "framework_bin"


def _env(tmp_path, path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B2CAL_", "DAGSTER_"))}
    env.update(B2CAL_HOME=str(tmp_path / "home"), PATH=path, PYTHONPATH=os.pathsep.join(sys.path))
    return env


def test_demo_through_the_framework_runner_signs_off_every_calibration(tmp_path):
    env = _env(tmp_path, os.pathsep.join([str(STAND_IN_BIN), os.environ["PATH"]]))
    result = subprocess.run(
        [
            str(B2CAL),
            "demo",
            "--fresh",
            "--processings",
            "1",
            "--runs",
            "6",
            "--runner",
            "framework",
            "--timeout",
            "1500",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert "runner framework" in log
    assert "RESULT: every calibration signed off, constants within tolerance" in log
    table = log[log.index("processing prompt_demo_1\n") :]
    for name in CALIBRATIONS:
        (row,) = [line for line in table.splitlines() if line.startswith(name + " ")]
        assert "signed_off" in row and "ok)" in row, row
    # every attempt was the framework's: its inputs in the framework's form, its outputdb taken back
    work = Path(env["B2CAL_HOME"]) / "work" / "prompt_demo_1"
    for name in CALIBRATIONS:
        (run_dir,) = work.glob(f"{name}/attempt_*/framework")
        config = json.loads((run_dir / "caf_config.json").read_text())
        assert config["caf_script"] == f"{name}.py" and config["database_chain"] == ["demo_base"]
        assert list((run_dir / "caf_outputdb_results").glob("*/database.txt")), name
    assert not processes_with_home(env["B2CAL_HOME"]), "the demo left Dagster processes running"


def test_demo_without_the_framework_says_how_to_get_it(tmp_path):
    env = _env(tmp_path, "/usr/bin:/bin")
    result = subprocess.run(
        [str(B2CAL), "demo", "--fresh", "--runner", "framework"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "b2caf-prompt-run is not on PATH" in line and "framework_bin" in line
    assert not (tmp_path / "home").exists()
    result = subprocess.run(
        [str(B2CAL), "demo", "--runner", "framework", "--path-prefix", "root://h:1094/"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--path-prefix does not go with --runner framework" in result.stderr
