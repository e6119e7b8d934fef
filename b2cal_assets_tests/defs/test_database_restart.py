"""The calibration database restarted mid-loop, on MariaDB and on PostgreSQL (a private server of the
test's own, stopped and started again on its port while a calibration's collector jobs run).

The database stays down until the jobs have ended, so the run meets the outage exactly where it records
its subjobs and payloads; it waits the restart out (``db/engine.py: retry_while_unreachable``), the
pooled connections the restart broke are replaced (pre-ping), and the loop finishes with one attempt
per step, every subjob run once, and nothing resumed or relaunched.
"""

from __future__ import annotations

import json
import threading
import time

import dagster as dg
import pytest
from sqlalchemy.exc import DBAPIError

from b2cal_assets import home
from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.db.engine import database_url, dispose_engine, ensure_schema
from b2cal_assets.db.errors import DatabaseError
from b2cal_assets.db.repo import attempts, audit, jobs
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing, make_site
from b2cal_assets_tests.defs.test_batch_faults import STEPS, loop_definitions
from b2cal_assets_tests.loop.daemon_like import Daemon
from b2cal_assets_tests.loop.helpers import collector_jobs

pytestmark = pytest.mark.slow


@pytest.fixture
def loop_on_private_server(b2cal_home, private_db_server, monkeypatch):
    monkeypatch.setenv("B2CAL_DATABASE_URL", private_db_server.url)
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(TOY_SCRIPTS))
    monkeypatch.setenv("B2CAL_TOY_SLEEP_S", "3")  # toy_a's two subjobs run while the server restarts
    monkeypatch.setenv("B2CAL_LOCAL_MAX_PROCESSES", "2")
    ensure_schema(database_url())
    make_site()
    admin.register_files(toy.generate(b2cal_home / "data", range(1, 3), events=500), site_name="toy_site")
    make_processing("p1", range(1, 3))
    yield private_db_server
    dispose_engine(private_db_server.url)


def collector_state(calibration: str) -> list[dict]:
    path = home.attempt_work_dir("p1", calibration, 1) / calibration / "0" / "collector_input" / "jobs.json"
    try:
        return list(json.loads(path.read_text())["jobs"].values())
    except (OSError, ValueError, KeyError):
        return []


def restart_while_toy_a_runs(server, log: list[str], stop: threading.Event) -> None:
    """Stop the server once toy_a's jobs are submitted; start it again only after they have ended."""
    while not stop.is_set():
        entries = collector_state("toy_a")
        if len(entries) == 2 and all(e.get("job_id") for e in entries):
            break
        time.sleep(0.2)
    else:
        return
    server.stop()
    log.append("stopped")
    outputs = home.attempt_work_dir("p1", "toy_a", 1) / "toy_a" / "0" / "collector_output"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(outputs.glob("*/exit_code"))) < 2:
        time.sleep(0.2)
    time.sleep(4)  # the run now finds the database away while it records its jobs and payloads
    log.append(f"jobs ended: {len(list(outputs.glob('*/exit_code')))}")
    server.start()
    log.append("started")


def test_the_loop_rides_out_a_database_restart(loop_on_private_server):
    server = loop_on_private_server
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    log: list[str] = []
    stop = threading.Event()
    restarter = threading.Thread(target=restart_while_toy_a_runs, args=(server, log, stop), daemon=True)
    restarter.start()
    tick_errors = 0
    try:
        with dg.instance_for_test() as instance:
            daemon = Daemon(loop_definitions(), instance)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:  # a tick that meets the database away fails; the daemon ticks again
                    daemon.settle()
                    if set(service.step_states("p1").values()) == {"signed_off"}:
                        break
                except (DBAPIError, DatabaseError):
                    tick_errors += 1
                    time.sleep(1)
            runs = daemon.results
    finally:
        stop.set()
        restarter.join(timeout=180)
    assert log == ["stopped", "jobs ended: 2", "started"], server.log()
    failed = [r for _, r in runs if not r.success]
    assert not failed, [e.message for r in failed for e in r.all_events if e.is_failure]
    assert service.step_states("p1") == dict.fromkeys(STEPS, "signed_off")
    # nothing lost, nothing twice: one run per step, one attempt each, every subjob submitted once
    assert sorted(request.run_key.split("|")[1] for request, _ in runs) == sorted(STEPS)
    with service.session() as s:
        for step in STEPS:
            made = attempts.list_attempts(s, "p1", step)
            assert [(a.number, a.state, a.resumes) for a in made] == [(1, "finished", 0)], step
        (toy_a,) = attempts.list_attempts(s, "p1", "toy_a")
        assert sorted(j.tries for j in collector_jobs(jobs.list_jobs(s, toy_a.id))) == [1, 1]
        healed = [e.action for e in audit.list_audit(s, processing="p1", user="auto", limit=100)]
        assert not [a for a in healed if a.startswith("loop_")], healed  # nothing relaunched or resumed
    (payload,) = service.current_payloads("p1", "toy_a")
    assert abs(float(read_payload(payload.file)["mean"].ravel()[0]) - toy.TRUE_MEAN) < 0.2
    stored = sorted(p.name for p in (home.payload_dir("p1", "toy_a", 1) / "outputdb").iterdir())
    assert stored == sorted(["database.txt", "dbstore_ToyA_rev_1.root"])
