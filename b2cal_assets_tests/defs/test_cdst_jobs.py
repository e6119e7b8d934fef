"""The cDST step of the loop as batch jobs at the site: a run whose job fails for good fails the step
with its log, the cDSTs of the other runs are registered all the same, and after a manager's
``b2cal manage restart <processing> cdst`` only the failed run's job runs again, and the loop ends
signed off with the cDST-reading calibration right."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from b2cal_assets import home
from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.cli import main
from b2cal_assets.db.engine import database_url
from b2cal_assets.db.repo import attempts, catalog, jobs
from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.caf import cdst_producers
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, toy_loop_one  # noqa: F401
from b2cal_assets_tests.defs.test_batch_faults import STEPS
from b2cal_assets_tests.loop.daemon_like import Daemon


def test_a_failed_cdst_job_fails_the_step_and_a_restart_runs_only_that_run(
    toy_loop_one,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setenv("B2CAL_BATCH_RETRY_DELAY_S", "0")
    monkeypatch.setenv("B2CAL_BATCH_POLL_INTERVAL_S", "0.2")
    monkeypatch.setenv("B2CAL_LOCAL_MAX_PROCESSES", "1")
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    (raw2,) = [p for p in (toy_loop_one / "data").glob("hadron_calib_e1_r2.root")]
    broken = Path(str(raw2) + cdst_producers.BROKEN)
    broken.write_text("")
    defs = build_definitions(
        str(TOY_SCRIPTS),
        loop=CalibrationLoopResource(
            calibrations_dir=str(TOY_SCRIPTS),
            cdst_producer="b2cal_assets_tests.caf.cdst_producers:flaky_cdst",
        ),
    )
    with dg.instance_for_test() as instance:
        daemon = Daemon(defs, instance)
        for _ in range(4):
            daemon.settle()
        assert service.step_states("p1")["cdst"] == "failed"
        with service.session() as s:
            (first,) = attempts.list_attempts(s, "p1", "cdst")
            assert "cdst.hadron_calib.e1.r2.0" in first.error and "is broken (test marker)" in first.error
            assert {(j.name.rsplit("/", 1)[-1], j.state, j.tries) for j in jobs.list_jobs(s, first.id)} == {
                ("cdst.hadron_calib.e1.r1.0", "done", 1),
                ("cdst.hadron_calib.e1.r2.0", "failed", 2),  # retried once, like a collector subjob
            }
        registered = service.registered_cdsts("p1")
        assert len(registered) == 1 and "e0001_r00001" in next(iter(registered))
        run1 = home.cdst_dir("p1").absolute() / "hadron_calib" / "e0001_r00001" / "0" / "exit_code"
        before = run1.stat().st_mtime_ns

        broken.unlink()  # the site's problem fixed
        assert main(["manage", "restart", "p1", "cdst", "--user", "mgr"]) == 0
        for _ in range(4):
            daemon.settle()
    assert service.step_states("p1") == dict.fromkeys(STEPS, "signed_off")
    assert run1.stat().st_mtime_ns == before  # its cDST was registered: its job did not run again
    with service.session() as s:
        second = attempts.list_attempts(s, "p1", "cdst")[1]
        assert [j.name.rsplit("/", 1)[-1] for j in jobs.list_jobs(s, second.id)] == ["cdst.hadron_calib.e1.r2.0"]
    assert len(service.registered_cdsts("p1")) == 2
    iov = service.processing_iov("p1")
    with service.session() as s:
        within = {"exp_low": iov.exp_low, "run_low": iov.run_low, "exp_high": iov.exp_high, "run_high": iov.run_high}
        raw = catalog.files_for(s, **within, data_tags=["hadron_calib"])
        made = catalog.files_for(s, **within, data_tags=None, data_format="cdst", processing_name="p1")
        # the events each cDST holds, as the job counted them in the file: those of its run's skim
        assert [(r.run, f.n_events) for f, r, _ in made] == [(r.run, f.n_events) for f, r, _ in raw]
        assert all(f.n_events > 0 for f, _, _ in made)
    (toy_c,) = service.current_payloads("p1", "toy_c")
    assert abs(float(read_payload(toy_c.file)["shift"].ravel()[0]) - toy.TRUE_SHIFT) < 0.05


def test_the_code_location_takes_the_files_per_cdst_job_from_the_environment(toy_home, monkeypatch):
    from b2cal_assets.definitions import defs
    from b2cal_assets.settings import SettingsError, settings

    monkeypatch.setenv("B2CAL_CDST_FILES_PER_JOB", "3")
    loop = defs().resources["loop"]
    assert loop.cdst_files_per_job == 3
    monkeypatch.setenv("B2CAL_CDST_FILES_PER_JOB", "-1")
    with pytest.raises(SettingsError, match=r"^B2CAL_CDST_FILES_PER_JOB='-1': "):
        settings()
