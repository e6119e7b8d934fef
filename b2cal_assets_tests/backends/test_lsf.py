"""LSF backend on outputs in the documented formats of bsub and ``bjobs -o ... -json``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from b2cal_assets.backends.base import BackendError, JobHandle, JobSpec, JobState
from b2cal_assets.backends.lsf import (
    LSFBackend,
    LSFOptions,
    bkill_targets,
    lsf_status,
    parse_bjobs_json,
    parse_bsub_output,
    render_array_script,
)
from b2cal_assets_tests.fixtures.services import ScriptedRunner

DATA = Path(__file__).parent / "data"


def _specs(tmp_path: Path, n: int) -> list[JobSpec]:
    specs = []
    for i in range(n):
        workdir = tmp_path / f"job{i}"
        workdir.mkdir(parents=True)
        specs.append(JobSpec(f"collector_{i}", ("echo", str(i)), workdir))
    return specs


def test_array_script_has_the_array_and_site_options(tmp_path):
    options = LSFOptions(
        queue="l", memory="4000", walltime="120", array_limit=20, extra_lines=("#BSUB -G belle",)
    )
    script = render_array_script(tmp_path / "m.txt", 300, options, job_name="svd", log_dir=tmp_path)
    lines = script.splitlines()
    assert '#BSUB -J "svd[1-300]%20"' in lines
    assert "#BSUB -q l" in lines
    assert "#BSUB -M 4000" in lines
    assert "#BSUB -W 120" in lines
    assert "#BSUB -G belle" in lines


def test_array_element_runs_the_job_of_its_manifest_line(tmp_path):
    """LSB_JOBINDEX is 1-based: element 2 runs the second line's run.sh."""
    workdirs = []
    for i in range(3):
        workdir = tmp_path / f"w{i}"
        workdir.mkdir()
        (workdir / "run.sh").write_text(f"echo job{i} > ran\n")
        workdirs.append(workdir)
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("".join(f"{w}\n" for w in workdirs))
    script = tmp_path / "array.sh"
    script.write_text(render_array_script(manifest, 3, LSFOptions(), job_name="j", log_dir=tmp_path))
    subprocess.run(["bash", str(script)], env={"LSB_JOBINDEX": "2", "PATH": "/usr/bin:/bin"}, check=True)
    assert (workdirs[1] / "ran").read_text() == "job1\n"


def test_parse_bsub_output():
    assert parse_bsub_output((DATA / "lsf_bsub.txt").read_text()) == "4821"
    assert parse_bsub_output("Job <77> is submitted to default queue <s>.\n") == "77"
    with pytest.raises(BackendError, match="no job id"):
        parse_bsub_output("Bad resource requirement syntax. Job not submitted.\n")


def test_bjobs_json_states_exit_codes_and_kills():
    records = parse_bjobs_json((DATA / "lsf_bjobs.json").read_text())
    assert "4790" not in records  # "Job <4790> is not found": forgotten
    statuses = {job_id: lsf_status(job_id, rec) for job_id, rec in records.items()}
    assert statuses["4821[1]"].state == JobState.DONE
    assert statuses["4821[2]"].state == JobState.FAILED and statuses["4821[2]"].exit_code == 3
    assert statuses["4821[3]"].state == JobState.RUNNING
    assert statuses["4821[4]"].state == JobState.PENDING
    assert statuses["4821[5]"].state == JobState.HELD
    assert statuses["4821[5]"].reason == "The job was suspended by user;"
    assert statuses["4821[6]"].state == JobState.CANCELLED


def test_bjobs_json_with_the_index_in_the_job_id():
    records = parse_bjobs_json((DATA / "lsf_bjobs_enh.json").read_text())
    assert set(records) == {"4821[1]", "4821[2]"}
    assert lsf_status("4821[2]", records["4821[2]"]).state == JobState.FAILED


def test_unknown_lsf_state_raises():
    with pytest.raises(BackendError, match="'HOVER'"):
        lsf_status("1[1]", {"STAT": "HOVER"})


def test_submit_is_one_bsub_with_the_script_on_stdin(tmp_path):
    runner = ScriptedRunner({"bsub": (0, "Job <4821> is submitted to queue <normal>.\n", "")})
    backend = LSFBackend(options=LSFOptions(queue="s"), runner=runner, submit_dir=tmp_path / "sub")
    specs = _specs(tmp_path, 4)
    handles = backend.submit(specs)
    assert runner.calls == [("bsub",)]
    assert '#BSUB -J "collector_0[1-4]"' in runner.stdins[0]
    assert [h.job_id for h in handles] == [f"4821[{i}]" for i in range(1, 5)]


def test_poll_is_one_bjobs_for_all_handles_and_forgotten_jobs_get_no_status(tmp_path):
    runner = ScriptedRunner({"bjobs": (255, (DATA / "lsf_bjobs.json").read_text(), "")})
    handles = [JobHandle("lsf", f"4821[{i}]", "j", tmp_path) for i in range(1, 7)]
    handles.append(JobHandle("lsf", "4790[1]", "gone", tmp_path))
    statuses = LSFBackend(runner=runner).poll(handles)
    assert runner.count("bjobs") == 1
    assert runner.calls[0][-2:] == ("4821", "4790")
    assert len(statuses) == 6 and "4790[1]" not in statuses


def test_a_failing_bjobs_is_an_error(tmp_path):
    runner = ScriptedRunner({"bjobs": (255, "", "LSF is down. Please wait ...\n")})
    with pytest.raises(BackendError, match="LSF is down"):
        LSFBackend(runner=runner).poll([JobHandle("lsf", "1[1]", "j", tmp_path)])


def test_cancel_is_one_bkill_with_index_ranges(tmp_path):
    runner = ScriptedRunner({"bkill": (0, "Job <4821[1]> is being terminated\n", "")})
    handles = [JobHandle("lsf", f"4821[{i}]", "j", tmp_path) for i in (1, 2, 3, 5)]
    LSFBackend(runner=runner).cancel(handles)
    assert runner.calls == [("bkill", "4821[1-3,5]")]
    assert bkill_targets(["9", "8[2]"]) == ["8[2]", "9"]


def test_unknown_settings_are_named():
    with pytest.raises(BackendError, match="unknown LSF setting"):
        LSFBackend.from_config({"universe": "vanilla"})
    assert LSFBackend.from_config({"queue": "l"}).options.queue == "l"
