"""A site with ``runner: framework``: every attempt is ONE b2caf-prompt-run job (the tests' stand-in)
on the site's backend, its outputdb recorded like any attempt's; a job that fails or leaves no
outputdb fails the attempt with the job's own words."""

import json
import os
import sys
from pathlib import Path

import dagster as dg
import pytest

from b2cal_assets.db.engine import database_url
from b2cal_assets.domain.outputdb import parse_database_txt
from b2cal_assets.domain.processing import SiteSpec
from b2cal_assets.domain.site_runner import RunnerKind
from b2cal_assets.home import attempt_work_dir, validation_work_dir
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing
from b2cal_assets_tests.defs.driver import check_metadata, drive

STAND_IN_BIN = Path(__file__).resolve().parents[1] / "fixtures" / "framework_bin"


@pytest.fixture
def framework_on_path(monkeypatch):
    """The stand-in b2caf-prompt-run on PATH, with this interpreter (it runs b2cal's runner)."""
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(STAND_IN_BIN), str(Path(sys.executable).parent), os.environ["PATH"]])
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))


def _framework_loop(home, setup=(), container=None):
    admin.ensure_site(
        SiteSpec(
            name="fw_site",
            backend="local",
            storage_root="/tmp",
            signoff_policy="automatic",
            runner=RunnerKind.FRAMEWORK,
            runner_args={"setup": list(setup), "heartbeat": 1} | ({"container": container} if container else {}),
        )
    )
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    admin.register_files(toy.generate(home / "data", range(1, 3)), site_name="fw_site")
    make_processing("p1", range(1, 3), site="fw_site")


def test_a_framework_site_calibrates_with_one_framework_job_per_attempt(
    toy_home, toy_defs, framework_on_path
):
    _framework_loop(toy_home, setup=["export B2CAL_SITE_SETUP=done"])
    with dg.instance_for_test() as instance:
        results = drive(toy_defs, instance)
        assert all(r.success for _, r in results), [r for _, r in results if not r.success]
        service = loop_service(database_url(), str(TOY_SCRIPTS))
        assert service.step_states("p1") == {
            "toy_a": "signed_off",
            "toy_b": "signed_off",
            "cdst": "signed_off",
            "toy_c": "signed_off",
        }
        run_dir = attempt_work_dir("p1", "toy_a", 1) / "framework"
        config = json.loads((run_dir / "caf_config.json").read_text())
        assert config["caf_script"] == "toy_a.py" and config["database_chain"] == ["toy_base"]
        layout = json.loads((run_dir / "input_data.json").read_text())
        assert [er for _d, er in next(iter(layout.values()))] == [[1, 1], [1, 2]]
        # the framework's output is what the loop recorded
        framework_db = parse_database_txt(
            next((run_dir / "caf_outputdb_results").glob("*/database.txt")).read_text()
        )
        recorded = service.current_payloads("p1", "toy_a")
        assert sorted((p.name, p.revision) for p in recorded) == sorted(
            (e.name, e.revision) for e in framework_db
        )
        assert all(Path(p.file).is_file() for p in recorded)
        # toy_b runs after toy_a: the framework job got toy_a's outputdb as testing payloads
        config_b = json.loads(
            (attempt_work_dir("p1", "toy_b", 1) / "framework" / "caf_config.json").read_text()
        )
        assert any("/payloads/" in entry for entry in config_b["testing_payloads"]), config_b
        # the one job is the attempt's job record (b2cal status --jobs): its directory has the framework's logs
        # and beside it the validation check's job (the framework's b2val-prompt-run)
        job, validation = service.job_rows("p1", "toy_a")
        assert job.name == "toy_a/iteration_0/b2caf-prompt-run" and (job.state, job.exit_code) == ("done", 0)
        assert validation.name == "toy_a.validation" and validation.backend == "local"
        assert Path(job.workdir) == run_dir and (run_dir / "stdout").is_file()
        # the run log shows the command and the framework's progress
        logs = " ".join(
            str(e.user_message)
            for _r, result in results
            if "toy_a" in str(result.dagster_run.asset_selection)
            or "toy_a" in str(result.dagster_run.asset_check_selection)
            for e in instance.all_logs(result.run_id)
        )
        assert "exec b2caf-prompt-run Local caf_config.json input_data.json --heartbeat 1" in logs
        assert "the framework's CAF: " in logs and "iteration 0" in logs
        # the validation ran as ONE batch job at the site, b2val-prompt-run after the site's setup ...
        validation_job = validation_work_dir("p1", "toy_a", 1)
        assert "export B2CAL_SITE_SETUP=done && b2val-prompt-run Local validation_config.json" in logs
        assert "[INFO] toy_a: mean" in (validation_job / "stdout").read_text()
        assert (validation_job / "validation_results.tar.gz").is_file()
        # ... and its plots reached the payload store and the check
        plot = Path(recorded[0].file).parent.parent / "validation_run" / "toy_a_mean.png"
        assert plot.is_file()
        metadata = check_metadata(instance, results, "toy_a")
        assert metadata["plot/toy_a_mean.png"].value == str(plot)
        assert metadata["metric/mean"].value == pytest.approx(3.0, abs=0.2)



def _fake_tool(tmp_path, body):
    folder = tmp_path / "fake_framework"
    folder.mkdir()
    tool = folder / "b2caf-prompt-run"
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)
    return f"export PATH={folder}:$PATH"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("echo 'the release lacks caf_toy_a' >&2; exit 3", "the release lacks caf_toy_a"),
        ("echo all fine; exit 0", "exited 0 but left no caf_outputdb_results/<calibration>/database.txt"),
    ],
    ids=["fails", "exit-0-without-outputdb"],
)
def test_a_framework_job_that_fails_or_leaves_nothing_fails_the_attempt(
    toy_home, toy_defs, tmp_path, body, expected
):
    _framework_loop(toy_home, setup=[_fake_tool(tmp_path, body)])
    with dg.instance_for_test() as instance:
        drive(toy_defs, instance)
        service = loop_service(database_url(), str(TOY_SCRIPTS))
        states = service.step_states("p1")
        assert states["toy_a"] == "failed" and states["toy_b"] not in ("finished", "signed_off")
        (row,) = [r for r in service.status_rows("p1") if r.step == "toy_a"]
        assert expected in row.error
        assert service.current_payloads("p1", "toy_a") == []
        jobs = service.job_rows("p1", "toy_a")
        assert jobs and {j.name for j in jobs} == {"toy_a/iteration_0/b2caf-prompt-run"}
        assert jobs[0].exit_code == (3 if "exit 3" in body else 0)


def test_a_failing_setup_command_stops_the_job(toy_home, toy_defs, framework_on_path):
    _framework_loop(toy_home, setup=["source /no/such/b2setup"])
    with dg.instance_for_test() as instance:
        drive(toy_defs, instance)
        (row,) = [
            r for r in loop_service(database_url(), str(TOY_SCRIPTS)).status_rows("p1") if r.step == "toy_a"
        ]
        assert row.state == "failed" and "/no/such/b2setup" in row.error


def test_an_orchestrator_without_the_framework_runs_the_loop_from_a_manifest(
    toy_home, framework_on_path, monkeypatch, tmp_path
):
    """Settings from the manifest (no script imported here), the computation in the framework's job."""
    from b2cal_assets.caf.manifest import manifest_document
    from b2cal_assets.caf.scripts import load_scripts
    from b2cal_assets.defs.definitions import build_definitions
    from b2cal_assets.defs.resources import CalibrationLoopResource

    manifest = tmp_path / "manifest.json"
    document = manifest_document(load_scripts(TOY_SCRIPTS), framework="basf2", release="release-08-01-00")
    manifest.write_text(json.dumps(document))
    monkeypatch.setenv("B2CAL_CALIBRATIONS_MANIFEST", str(manifest))
    _framework_loop(toy_home)
    loop = CalibrationLoopResource(
        calibrations_dir=str(TOY_SCRIPTS), cdst_producer="b2cal_assets_tests.defs.toy:produce_cdst"
    )
    defs = build_definitions(str(TOY_SCRIPTS), loop=loop)
    with dg.instance_for_test() as instance:
        results = drive(defs, instance)
        assert all(r.success for _, r in results), [r for _, r in results if not r.success]
        service = loop_service(database_url(), str(TOY_SCRIPTS))
        assert all(s.module is None for s in service.scripts.calibrations.values())
        assert set(service.step_states("p1").values()) == {"signed_off"}


def test_a_framework_sites_jobs_read_local_run_directories_not_through_its_path_prefix(toy_home):
    files = toy.generate(toy_home / "data", range(1, 3))
    for runner, args in ((RunnerKind.B2CAL, {}), (RunnerKind.FRAMEWORK, {"setup": ["true"]})):
        admin.ensure_site(
            SiteSpec(
                name=f"s_{runner}",
                backend="local",
                storage_root=str(toy_home / "data"),
                path_prefix="root://xrootd.example.org:1094/",
                runner=runner,
                runner_args=args,
            )
        )
        admin.register_files(files, site_name=f"s_{runner}")
        make_processing(f"p_{runner}", range(1, 3), site=f"s_{runner}")
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    through_prefix = service.input_data("p_b2cal", "toy_a")
    local = service.input_data("p_framework", "toy_a")
    assert all(p.startswith("root://xrootd.example.org:1094//") for f in through_prefix.values() for p in f)
    assert sorted(Path(p).name for f in local.values() for p in f) == sorted(
        p.rsplit("/", 1)[1] for f in through_prefix.values() for p in f
    )
    assert all(Path(p).is_file() for f in local.values() for p in f)


def test_a_framework_site_in_containers_without_an_engine_fails_the_attempt_saying_what_is_missing(
    toy_home, toy_defs, monkeypatch, tmp_path
):
    """``runner_args.container`` needs the engine's socket (a stack: docker/compose.container-jobs.yaml)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    _framework_loop(toy_home, container="b2cal:latest")
    with dg.instance_for_test() as instance:
        results = drive(toy_defs, instance)
        (row,) = [
            r for r in loop_service(database_url(), str(TOY_SCRIPTS)).status_rows("p1") if r.step == "toy_a"
        ]
        logs = " ".join(
            str(e.user_message) for _r, result in results for e in instance.all_logs(result.run_id)
        )
        assert row.state == "failed", row
        message = f"{row.error} {logs}"
        assert "no container engine answers at unix://" in message and "compose.container-jobs.yaml" in message
