"""Slurm backend without a cluster: scripts it renders, outputs it parses, commands it runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from b2cal_assets.backends.base import BackendError, JobHandle, JobSpec, JobState
from b2cal_assets.backends.commands import SubprocessRunner
from b2cal_assets.backends.slurm import (
    SlurmBackend,
    SlurmOptions,
    SlurmRecord,
    compress_task_ids,
    parse_jobcomp,
    parse_sbatch_output,
    parse_squeue_output,
    render_array_script,
    slurm_status,
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


# -- rendering ----------------------------------------------------------------------------------


def test_array_script_carries_site_options_and_runs_the_task_of_its_manifest_line(tmp_path):
    options = SlurmOptions(
        partition="belle",
        memory="4G",
        time_limit="02:00:00",
        array_limit=50,
        extra_lines=("#SBATCH --account=calib", "module load basf2"),
    )
    script = render_array_script(tmp_path / "manifest.txt", 200, options, job_name="cdc t0", log_dir=tmp_path)
    lines = script.splitlines()
    assert "#SBATCH --array=0-199%50" in lines
    assert "#SBATCH --partition=belle" in lines
    assert "#SBATCH --mem=4G" in lines
    assert "#SBATCH --time=02:00:00" in lines
    assert "#SBATCH --job-name=cdc_t0" in lines
    # extra lines come after the generated directives and before the first command
    assert lines.index("#SBATCH --account=calib") < lines.index("module load basf2")
    assert lines.index("module load basf2") < next(i for i, line in enumerate(lines) if "sed -n" in line)


def test_array_script_selects_the_manifest_line_of_each_task(tmp_path):
    """Run the rendered script with bash as Slurm would for task 1: it runs job 1's run.sh."""
    workdirs = []
    for i in range(3):
        workdir = tmp_path / f"w {i}"
        workdir.mkdir()
        (workdir / "run.sh").write_text(f"echo job{i} > ran\n")
        workdirs.append(workdir)
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("".join(f"{w}\n" for w in workdirs))
    script = tmp_path / "array.sh"
    script.write_text(render_array_script(manifest, 3, SlurmOptions(), job_name="j", log_dir=tmp_path))
    subprocess.run(
        ["bash", str(script)], env={"SLURM_ARRAY_TASK_ID": "1", "PATH": "/usr/bin:/bin"}, check=True
    )
    assert (workdirs[1] / "ran").read_text() == "job1\n"
    assert not (workdirs[0] / "ran").exists()
    # a task beyond the manifest fails loudly instead of running nothing quietly
    proc = subprocess.run(
        ["bash", str(script)],
        env={"SLURM_ARRAY_TASK_ID": "7", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "no job for array task 7" in proc.stderr


# -- parsing ------------------------------------------------------------------------------------


def test_parse_sbatch_parsable_output():
    assert parse_sbatch_output((DATA / "slurm_sbatch_parsable.txt").read_text()) == "528"
    assert parse_sbatch_output("1234;cluster_a\n") == "1234"
    with pytest.raises(BackendError, match="no job id"):
        parse_sbatch_output("sbatch: error: Batch job submission failed\n")


def test_captured_squeue_output_maps_onto_job_states():
    records = parse_squeue_output((DATA / "slurm_squeue.txt").read_text())
    statuses = {job_id: slurm_status(rec) for job_id, rec in records.items()}
    assert statuses["519_0"].state == JobState.DONE and statuses["519_0"].exit_code == 0
    assert statuses["519_1"].state == JobState.FAILED and statuses["519_1"].exit_code == 3
    assert statuses["519_2"].state == JobState.RUNNING
    assert statuses["519_3"].state == JobState.CANCELLED
    assert statuses["519_4"].state == JobState.FAILED
    assert statuses["519_4"].reason == "killed by signal 9"
    assert statuses["525_5"].state == JobState.PENDING
    assert statuses["524"].state == JobState.HELD and statuses["524"].reason == "JobHeldUser"


def test_captured_jobcomp_file_gives_final_states_of_purged_jobs():
    text = (DATA / "slurm_jobcomp.txt").read_text()
    records = parse_jobcomp(text, ["519_1", "519_4", "524", "519_0"])
    assert set(records) == {"519_0", "519_1", "519_4", "524"}
    assert slurm_status(records["519_1"]).exit_code == 3
    assert slurm_status(records["519_4"]).exit_code == 128 + 9
    assert slurm_status(records["524"]).state == JobState.CANCELLED


def test_unknown_slurm_state_raises():
    with pytest.raises(BackendError, match="'LOST_IN_SPACE'"):
        slurm_status(SlurmRecord("7_1", "LOST_IN_SPACE"))


def test_task_ids_are_compressed_for_one_scancel():
    assert compress_task_ids(["12_0", "12_1", "12_2", "12_7", "13", "12_9", "12_10"]) == [
        "12_[0-2,7,9-10]",
        "13",
    ]


# -- the backend with captured answers ----------------------------------------------------------


def test_submit_puts_all_jobs_into_one_array_with_a_manifest(tmp_path):
    runner = ScriptedRunner({"sbatch": (0, "528\n", "")})
    backend = SlurmBackend(runner=runner, submit_dir=tmp_path / "sub")
    specs = _specs(tmp_path, 5)
    handles = backend.submit(specs)
    assert runner.count("sbatch") == 1
    assert [h.job_id for h in handles] == [f"528_{i}" for i in range(5)]
    assert [h.workdir for h in handles] == [s.workdir for s in specs]
    script = Path(runner.calls[0][-1])
    manifest = script.parent / "manifest.txt"
    assert manifest.read_text().splitlines() == [str(s.workdir) for s in specs]
    assert "#SBATCH --array=0-4" in script.read_text()
    assert all((s.workdir / "run.sh").is_file() for s in specs)


def test_jobs_with_different_backend_args_go_to_separate_arrays(tmp_path):
    ids = iter(["10", "11", "12"])
    runner = ScriptedRunner({"sbatch": lambda argv: (0, next(ids) + "\n", "")})
    backend = SlurmBackend(options=SlurmOptions(memory="2G"), runner=runner, submit_dir=tmp_path / "s")
    big = _specs(tmp_path / "big", 2, memory="8G")
    small = _specs(tmp_path / "small", 3)
    handles = backend.submit([big[0], small[0], big[1], small[1], small[2]])
    assert [h.job_id for h in handles] == ["10_0", "11_0", "10_1", "11_1", "11_2"]
    scripts = [Path(c[-1]).read_text() for c in runner.calls]
    assert "#SBATCH --mem=8G" in scripts[0]
    assert "#SBATCH --mem=2G" in scripts[1]


def test_more_jobs_than_max_array_size_are_split_into_several_arrays(tmp_path):
    ids = iter(["20", "21", "22"])
    runner = ScriptedRunner({"sbatch": lambda argv: (0, next(ids) + "\n", "")})
    backend = SlurmBackend(runner=runner, submit_dir=tmp_path / "s", max_array_size=2)
    handles = backend.submit(_specs(tmp_path, 5))
    assert [h.job_id for h in handles] == ["20_0", "20_1", "21_0", "21_1", "22_0"]


def test_a_refused_submission_names_the_command_and_slurms_message(tmp_path):
    runner = ScriptedRunner(
        {"sbatch": (1, "", "sbatch: error: Batch job submission failed: Invalid partition name specified\n")}
    )
    backend = SlurmBackend(options=SlurmOptions(partition="nope"), runner=runner, submit_dir=tmp_path / "s")
    with pytest.raises(BackendError, match="Invalid partition name specified"):
        backend.submit(_specs(tmp_path, 1))


def test_poll_asks_squeue_once_for_all_handles(tmp_path):
    runner = ScriptedRunner({"squeue": (0, (DATA / "slurm_squeue.txt").read_text(), "")})
    backend = SlurmBackend(runner=runner)
    handles = [JobHandle("slurm", f"525_{i}", f"j{i}", tmp_path) for i in range(10)]
    handles += [JobHandle("slurm", "519_1", "x", tmp_path), JobHandle("slurm", "524", "y", tmp_path)]
    statuses = backend.poll(handles)
    assert runner.count("squeue") == 1
    assert runner.calls[0][-1] == "525,519,524"
    assert statuses["525_0"].state == JobState.RUNNING
    assert statuses["525_9"].state == JobState.PENDING
    assert statuses["519_1"].exit_code == 3
    assert statuses["524"].state == JobState.HELD


def test_a_job_slurm_forgot_gets_no_status_unless_the_jobcomp_file_has_it(tmp_path):
    runner = ScriptedRunner({"squeue": (1, "", "slurm_load_jobs error: Invalid job id specified\n")})
    handles = [JobHandle("slurm", "519_1", "a", tmp_path), JobHandle("slurm", "9999_0", "b", tmp_path)]
    assert SlurmBackend(runner=runner).poll(handles) == {}
    with_jobcomp = SlurmBackend(runner=runner, jobcomp_file=DATA / "slurm_jobcomp.txt")
    statuses = with_jobcomp.poll(handles)
    assert set(statuses) == {"519_1"}
    assert statuses["519_1"].state == JobState.FAILED and statuses["519_1"].exit_code == 3


def test_a_failing_squeue_is_an_error_not_an_empty_queue(tmp_path):
    runner = ScriptedRunner(
        {"squeue": (1, "", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n")}
    )
    with pytest.raises(BackendError, match="Unable to contact slurm controller"):
        SlurmBackend(runner=runner).poll([JobHandle("slurm", "1_0", "a", tmp_path)])


def test_cancel_is_one_scancel_for_all_handles(tmp_path):
    runner = ScriptedRunner({"scancel": (0, "", "")})
    handles = [JobHandle("slurm", f"40_{i}", "j", tmp_path) for i in range(300)]
    handles.append(JobHandle("slurm", "41", "single", tmp_path))
    SlurmBackend(runner=runner).cancel(handles)
    assert runner.calls == [("scancel", "40_[0-299]", "41")]


def test_unknown_settings_and_backend_args_are_named(tmp_path):
    with pytest.raises(BackendError, match=r"unknown Slurm setting.*queue.*known settings are.*partition"):
        SlurmBackend.from_config({"queue": "short"})
    backend = SlurmBackend.from_config(
        {"partition": "belle", "extra_lines": "#SBATCH --qos=high\n", "max_array_size": 500},
        runner=ScriptedRunner({"sbatch": (0, "1\n", "")}),
    )
    assert backend.options.extra_lines == ("#SBATCH --qos=high",)
    assert backend.max_array_size == 500
    with pytest.raises(BackendError, match=r"collector_0: unknown Slurm option.*memroy"):
        backend.submit(_specs(tmp_path, 1, memroy="2G"))


def test_without_arrays_each_job_is_its_own_sbatch_and_polled_by_its_id(tmp_path):
    ids = iter(["601", "602"])
    squeue = "601|COMPLETED|None|0|\n602|RUNNING|None|0|\n"
    runner = ScriptedRunner({"sbatch": lambda argv: (0, next(ids) + "\n", ""), "squeue": (0, squeue, "")})
    backend = SlurmBackend(runner=runner, use_arrays=False)
    handles = backend.submit(_specs(tmp_path, 2))
    assert [h.job_id for h in handles] == ["601", "602"]
    assert "--array" not in Path(runner.calls[0][-1]).read_text()
    statuses = backend.poll(handles)
    assert runner.calls[-1][-1] == "601,602"
    assert statuses["601"].state == JobState.DONE and statuses["602"].state == JobState.RUNNING


def test_missing_slurm_commands_are_a_clear_error(tmp_path):
    runner = SubprocessRunner(env={"PATH": str(tmp_path)})
    with pytest.raises(BackendError, match="sbatch is not on PATH"):
        SlurmBackend(runner=runner, submit_dir=tmp_path / "s").submit(_specs(tmp_path, 1))
