"""The calibration database (a private MariaDB server of the test's own) restarted while the real
Dagster daemon runs the loop: stopped once toy_a's collector jobs are in the batch system, started again
after they have ended. Meanwhile the loop sensor's ticks fail and the run waits the outage out where it
records its subjobs and payloads (``B2CAL_DB_RETRY_S``); nothing is done by hand. The loop finishes
with every calibration signed off, one attempt per step, every subjob run once and one run per run key.

The in-process version, on both engines, is ``defs/test_database_restart.py``; this one is about the
daemon's processes (sensor ticks, run workers, run monitoring) meeting the outage.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus

from b2cal_assets import home
from b2cal_assets.db.engine import database_url, dispose_engine, ensure_schema
from b2cal_assets.db.repo import attempts, jobs
from b2cal_assets.defs.instance import prepare_dagster_home, start_daemon, stop_daemon, wait_for_runs
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing, make_site
from b2cal_assets_tests.e2e.test_daemon_faults import toy_a_submitted_jobs, wait_until
from b2cal_assets_tests.e2e.test_daemon_loop import STEPS, wait_for_loop
from b2cal_assets_tests.e2e.toy_daemon import toy_daemon_env
from b2cal_assets_tests.loop.helpers import collector_jobs

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]


@pytest.fixture
def loop_on_private_mariadb(b2cal_home, private_db_server, monkeypatch):
    monkeypatch.setenv("B2CAL_DATABASE_URL", private_db_server.url)
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(TOY_SCRIPTS))
    ensure_schema(database_url())
    make_site()
    admin.register_files(toy.generate(b2cal_home / "data", range(1, 3), events=500), site_name="toy_site")
    make_processing("p1", range(1, 3))
    dispose_engine(private_db_server.url)  # no pooled connection of the test's across the restart
    yield private_db_server
    dispose_engine(private_db_server.url)


def jobs_ended(outputs: Path) -> int:
    return len(list(outputs.glob("*/exit_code")))


@pytest.mark.parametrize("private_db_server", ["mariadb"], indirect=True)
def test_the_daemon_loop_rides_out_a_database_restart(b2cal_home, loop_on_private_mariadb):
    server, root = loop_on_private_mariadb, b2cal_home
    dagster_home = root / "dagster"
    prepare_dagster_home(dagster_home)
    env = toy_daemon_env(root, B2CAL_DATABASE_URL=server.url, B2CAL_TOY_SLEEP_S="6")
    log = root / "logs" / "daemon.log"
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    outputs = home.attempt_work_dir("p1", "toy_a", 1) / "toy_a" / "0" / "collector_output"
    daemon = start_daemon(env, log)
    try:
        wait_until(lambda: toy_a_submitted_jobs("p1"), 600, "p1's toy_a collector jobs", log)
        dispose_engine(server.url)
        server.stop()  # what `systemctl restart mariadb` does first
        wait_until(lambda: jobs_ended(outputs) == 2, 120, "toy_a's jobs to end", log)
        time.sleep(8)  # several loop-sensor ticks fail, and the run meets the outage as it records
        assert daemon.poll() is None, log.read_text()[-3000:]
        server.start()
        wait_for_loop(service, ["p1"], daemon, log, timeout_s=600)
        assert wait_for_runs(dagster_home) == 0
    finally:
        stop_daemon(daemon)

    # nothing lost, nothing twice: one attempt per step, every toy_a subjob submitted once
    with service.session() as s:
        for step in STEPS:
            made = attempts.list_attempts(s, "p1", step)
            assert [(a.number, a.state) for a in made] == [(1, "finished")], step
        (toy_a,) = attempts.list_attempts(s, "p1", "toy_a")
        assert sorted(j.tries for j in collector_jobs(jobs.list_jobs(s, toy_a.id))) == [1, 1]
    assert not list(outputs.rglob("stdout.*"))  # no subjob was submitted a second time
    for step in ("toy_a", "toy_b", "toy_c"):
        assert len(service.current_payloads("p1", step)) == 1, step
    stored = sorted(p.name for p in (home.payload_dir("p1", "toy_a", 1) / "outputdb").iterdir())
    assert stored == ["database.txt", "dbstore_ToyA_rev_1.root"]

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        runs = [
            r for r in instance.get_runs() if r.tags.get("dagster/sensor_name") == "calibration_loop_sensor"
        ]
        keys = [r.tags["dagster/run_key"] for r in runs]
        assert len(keys) == len(set(keys))  # Dagster started no run key twice
        assert {r.tags["dagster/run_key"].split("|")[1] for r in runs} == set(STEPS)
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}, [(r.run_id, r.status) for r in runs]
        (sensor,) = [s for s in instance.all_instigator_state() if s.name == "calibration_loop_sensor"]
        ticks = instance.get_ticks(sensor.instigator_origin_id, sensor.selector_id, limit=1000)
    finally:
        instance.dispose()
    assert any(t.status == TickStatus.FAILURE for t in ticks)  # the sensor's ticks did meet the outage
