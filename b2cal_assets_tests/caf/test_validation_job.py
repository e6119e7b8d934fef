"""A validation script runs as the framework runs it: a program, four string arguments, plots in its
own working directory, the framework's names importable."""

import json

from b2cal_assets.caf.scripts import load_scripts
from b2cal_assets.caf.validation_job import run_validation_job
from b2cal_assets.domain.iov import IoV
from b2cal_assets_tests.domain.scriptdir import calibration, write

VALIDATION = '''
"""Validation of the CDC tracking calibration, in the framework's style."""
import json
import os
import sys
from pathlib import Path

import basf2
import ROOT
from prompt import ValidationSettings

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT.gROOT.SetBatch(True)

settings = ValidationSettings(name="CDC Tracking", description=__doc__, download_files=["stdout"],
                              expert_config={"bins": 50, "fail": False})


def run_validation(job_path, input_data_path, requested_iov, expert_config):
    expert_config = json.loads(expert_config)
    basf2.B2INFO(f"validating {job_path}")
    Path("seen.json").write_text(json.dumps({
        "types": [type(a).__name__ for a in (job_path, input_data_path, requested_iov)],
        "job_path": job_path, "input_data_path": input_data_path,
        "requested_iov": json.loads(requested_iov), "expert_config": expert_config, "cwd": os.getcwd(),
    }))
    if expert_config["fail"]:
        raise RuntimeError("the t0 distribution is empty")
    os.makedirs("plots/allData", exist_ok=True)
    plt.hist([1, 2, 2, 3], bins=expert_config["bins"])
    plt.savefig("plots/allData/t0.png")


if __name__ == "__main__":
    run_validation(*sys.argv[1:])
'''


def _setup(tmp_path):
    write(tmp_path / "prompt" / "calibrations", "caf_cdc.py", calibration("CDC Tracking", subsystem="cdc"))
    write(tmp_path / "prompt" / "validations", "cdc_tracking_validation.py", VALIDATION)
    job = tmp_path / "job"
    (job / "calibration_results" / "tz0" / "0").mkdir(parents=True)
    (job / "calibration_results" / "tz0" / "0" / "stdout").write_text("collector log\n")
    return load_scripts(tmp_path / "prompt" / "calibrations")["CDC Tracking"].validation, job


def test_runs_as_a_script_with_the_argv_contract(tmp_path):
    validation, job = _setup(tmp_path)
    run = run_validation_job(
        validation, job_path=job, input_data_path=tmp_path / "input_data.json", requested_iov=IoV(26, 1, -1, -1),
        expert_config={"bins": 5}, workdir=tmp_path / "val",
    )
    assert run.exit_code == 0, run.log_tail()
    assert run.passed
    seen = json.loads((tmp_path / "val" / "seen.json").read_text())
    assert seen["types"] == ["str", "str", "str"]
    assert seen["job_path"] == str(job.resolve())
    assert seen["input_data_path"] == str(tmp_path / "input_data.json")
    assert seen["requested_iov"] == [26, 1, -1, -1]
    assert seen["expert_config"] == {"bins": 5, "fail": False}  # overrides merged over the script's defaults
    assert seen["cwd"] == str((tmp_path / "val").resolve())
    assert run.plots == [(tmp_path / "val" / "plots" / "allData" / "t0.png").resolve()]
    assert [p.relative_to(run.workdir).as_posix() for p in run.downloaded] == [
        "download_files/calibration_results/tz0/0/stdout"
    ]
    assert "[INFO] validating" in run.log.read_text()


def test_a_failing_script_is_a_failed_validation_with_its_log(tmp_path):
    validation, job = _setup(tmp_path)
    run = run_validation_job(
        validation, job_path=job, input_data_path="in.json", requested_iov=IoV(26, 1, -1, -1),
        expert_config={"fail": True}, workdir=tmp_path / "val",
    )
    assert run.exit_code == 1 and not run.passed
    assert "RuntimeError: the t0 distribution is empty" in run.summary
    assert run.plots == []


def test_a_script_that_hangs_is_stopped(tmp_path):
    validation, job = _setup(tmp_path)
    (tmp_path / "prompt" / "validations" / "cdc_tracking_validation.py").write_text(
        VALIDATION.replace('    expert_config = json.loads(expert_config)\n',
                           '    import time\n    time.sleep(60)\n')
    )
    validation = load_scripts(tmp_path / "prompt" / "calibrations")["CDC Tracking"].validation
    run = run_validation_job(
        validation, job_path=job, input_data_path="in.json", requested_iov=IoV(26, 1, -1, -1),
        workdir=tmp_path / "val", timeout_s=3,
    )
    assert not run.passed
    assert "did not finish within 3 s" in run.log.read_text()


def test_val_prompt_run_takes_the_frameworks_validation_config(tmp_path, monkeypatch, capsys):
    from b2cal_assets.caf.val_prompt_run import main

    _, job = _setup(tmp_path)
    (job / "CollectorOutput.root").write_text("x")
    config = {
        "validation_script": "cdc_tracking_validation.py", "job_path": str(job),
        "input_data_path": str(tmp_path / "input_data.json"), "download_files": ["*.root"],
        "backend_args": {}, "requested_iov": [26, 1, -1, -1], "expert_config": {"bins": 4},
    }
    (tmp_path / "validation_config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    folder = str(tmp_path / "prompt" / "calibrations")
    assert main(["Local", "validation_config.json", "--calibrations-dir", folder]) == 0
    results = tmp_path / "validation_results"
    assert (results / "plots" / "allData" / "t0.png").is_file()
    assert json.loads((results / "seen.json").read_text())["expert_config"] == {"bins": 4, "fail": False}
    assert sorted(p.name for p in (results / "download_files").rglob("*") if p.is_file()) == [
        "CollectorOutput.root", "stdout",
    ]
    assert "1 plot(s)" in capsys.readouterr().out
    assert main(["Local", "validation_config.json", "--calibrations-dir", folder]) == 1  # kept unless asked
    assert "validation_results exists" in capsys.readouterr().err
    config["expert_config"] = {"fail": True}
    (tmp_path / "validation_config.json").write_text(json.dumps(config))
    assert main(["Local", "validation_config.json", "--calibrations-dir", folder, "--overwrite-working-dir"]) == 1
    assert "the t0 distribution is empty" in capsys.readouterr().out
    (tmp_path / "validation_config.json").write_text(json.dumps({**config, "requested_iov": "all"}))
    assert main(["Local", "validation_config.json", "--calibrations-dir", folder]) == 1
    assert "requested_iov: must be 4 integers" in capsys.readouterr().err
