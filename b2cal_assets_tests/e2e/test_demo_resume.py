"""`b2cal demo` killed mid-loop (SIGKILL: no clean-up at all, its daemon left running) and run again on
the same B2CAL_HOME without --fresh: it resumes the loop where it was, with no regenerated data, no
re-registered processing, one attempt per calibration, and ends signed off."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from b2cal_assets_tests.e2e.test_demo_command import CALIBRATIONS, processes_with_home

pytestmark = pytest.mark.slow

B2CAL = Path(sys.executable).with_name("b2cal")
REPO = Path(__file__).resolve().parents[2]
ARGS = ["--processings", "1", "--runs", "6", "--timeout", "1500"]


def query(home: Path, sql: str) -> list[tuple]:
    engine = create_engine(f"sqlite:///{home / 'b2cal.db'}")
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(text(sql))]
    finally:
        engine.dispose()


def states(home: Path) -> dict[str, str]:
    try:
        return dict(query(home, "SELECT calibration, state FROM processing_calibration"))
    except Exception:  # not created yet, or busy
        return {}


def data_files(home: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted((home / "data").rglob("*.root"))}


def test_a_killed_demo_resumes_where_it_was(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B2CAL_", "DAGSTER_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    home = tmp_path / "home"
    env["B2CAL_HOME"] = str(home)
    first_log = tmp_path / "first.log"
    with open(first_log, "wb") as out:
        first = subprocess.Popen([str(B2CAL), "demo", "--fresh", *ARGS], env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline:
            s = states(home)
            if sum(v == "signed_off" for v in s.values()) >= 3 and "running" in s.values():
                break
            assert first.poll() is None, first_log.read_text()[-4000:]
            time.sleep(1)
        else:
            pytest.fail("the demo did not get going:\n" + first_log.read_text()[-4000:])
        first.send_signal(signal.SIGKILL)  # no handler runs: its daemon and runs are left as they are
        first.wait()
    before = states(home)
    files = data_files(home)
    catalog = query(
        home, "SELECT id, path, registered_at FROM catalog_file WHERE data_format = 'raw' ORDER BY id"
    )
    processings = query(home, "SELECT id, name, created_at FROM processing")
    assert files and catalog and processings and processes_with_home(str(home))  # its daemon lives on

    second = subprocess.run(
        [str(B2CAL), "demo", *ARGS], env=env, capture_output=True, text=True, timeout=1800
    )
    log = second.stdout + second.stderr
    (tmp_path / "second.log").write_text(log)
    assert second.returncode == 0, log[-6000:]
    assert "resuming the demo" in log and "generating calibration skims" not in log
    assert "stopped the Dagster daemon" in log  # the one the killed demo left running
    assert "RESULT: every calibration signed off, constants within tolerance" in log
    assert data_files(home) == files  # no regenerated data
    assert (
        query(home, "SELECT id, path, registered_at FROM catalog_file WHERE data_format = 'raw' ORDER BY id")
        == catalog
    )
    assert query(home, "SELECT id, name, created_at FROM processing") == processings
    assert set(states(home).values()) == {"signed_off"} and len(states(home)) == len(CALIBRATIONS) + 1
    # nothing done twice: one attempt per step, whether it had finished, was running or had not started
    assert (
        query(home, "SELECT calibration, COUNT(*) FROM attempt GROUP BY calibration HAVING COUNT(*) > 1")
        == []
    )
    assert "running" in before.values() and "signed_off" in before.values()
    # and no collector subjob ran twice (a rerun keeps the earlier try's log as stdout.<n>)
    assert (home / "work").is_dir() and not list((home / "work").rglob("stdout.*"))
    assert not processes_with_home(str(home)), "the demo left Dagster processes running"
