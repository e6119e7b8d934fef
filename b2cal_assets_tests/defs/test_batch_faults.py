"""Faults of the batch system under the whole loop: collector subjobs that fail once (on the local pool
and on the real Slurm cluster) and a scheduler whose status command fails three times in a row.

The loop runs through the sensors and runs in process (``loop/daemon_like.py``). Each test counts what
was done: one attempt per step, every collector subjob recorded once, each tried once except the ones
made to fail, which are tried exactly twice; and every step ends signed off with the right constants.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from b2cal_assets import home
from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.db.engine import database_url
from b2cal_assets.db.repo import attempts, jobs
from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing, make_site
from b2cal_assets_tests.loop.daemon_like import Daemon
from b2cal_assets_tests.loop.helpers import collector_jobs

STEPS = ("toy_a", "toy_b", "cdst", "toy_c")
COLLECTED = ("toy_a", "toy_b", "toy_c")  # the steps with collector subjobs (the cDST jobs are counted apart)
# one input file of each calibration fails on its first try: 3 of the 30 subjobs (10 %)
FAIL_ONCE = {
    "toy_a": "hadron_calib_e1_r3.root",
    "toy_b": "bhabha_all_calib_e1_r6.root",
    "toy_c": "cdst_e1_r9.root",
}


def loop_definitions() -> dg.Definitions:
    """Built after the test's environment is set: the backend resources read their policy from it."""
    loop = CalibrationLoopResource(
        calibrations_dir=str(TOY_SCRIPTS), cdst_producer="b2cal_assets_tests.defs.toy:produce_cdst"
    )
    return build_definitions(str(TOY_SCRIPTS), loop=loop)


def ten_runs(root: Path, backend: str) -> None:
    """One processing over runs 1-10: one file per run and data tag, one subjob per file."""
    make_site(backend=backend)
    admin.register_files(toy.generate(root / "data", range(1, 11), events=500), site_name="toy_site")
    make_processing("p1", range(1, 11))
    marks = root / "fail_once"
    marks.mkdir()
    for name in FAIL_ONCE.values():
        (marks / name).touch()


def run_loop_to_the_end(defs: dg.Definitions) -> None:
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    with dg.instance_for_test() as instance:
        daemon = Daemon(defs, instance)
        for _ in range(6):
            daemon.settle()
            if set(service.step_states("p1").values()) == {"signed_off"}:
                break
        failed = [r for _, r in daemon.results if not r.success]
        assert not failed, [e.message for r in failed for e in r.all_events if e.is_failure]
        keys = [request.run_key for request, _ in daemon.results]
        assert len(keys) == len(set(keys))
    assert service.step_states("p1") == dict.fromkeys(STEPS, "signed_off")
    (toy_c,) = service.current_payloads("p1", "toy_c")
    assert abs(float(read_payload(toy_c.file)["shift"].ravel()[0]) - toy.TRUE_SHIFT) < 0.1


def tries_by_input(processing: str, calibration: str) -> dict[str, int]:
    """Each recorded collector subjob's tries, by the name of its one input file."""
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    with service.session() as s:
        (attempt,) = attempts.list_attempts(s, processing, calibration)
        assert (attempt.number, attempt.state) == (1, "finished")
        rows = collector_jobs(jobs.list_jobs(s, attempt.id))
        assert {j.state for j in rows} == {"done"}, [(j.name, j.state) for j in rows]
        names = [j.name for j in rows]
        assert len(names) == len(set(names)), names  # no subjob recorded twice
        return {j.name: j.tries for j in rows}


def assert_only_the_broken_ones_ran_twice() -> None:
    total = failed_once = 0
    for calibration in COLLECTED:
        tries = tries_by_input("p1", calibration)
        assert len(tries) == 10, (calibration, tries)
        twice = [name for name, n in tries.items() if n == 2]
        assert len(twice) == 1 and sorted(tries.values()) == [1] * 9 + [2], (calibration, tries)
        total, failed_once = total + len(tries), failed_once + len(twice)
    assert (total, failed_once) == (30, 3)  # 10 % of the subjobs failed once; no other was rerun
    assert not list((home.b2cal_home() / "fail_once").iterdir())  # every injected failure happened


@pytest.fixture
def fast_batch(monkeypatch):
    monkeypatch.setenv("B2CAL_TOY_A_MAX_JOBS", "10")
    monkeypatch.setenv("B2CAL_BATCH_RETRY_DELAY_S", "1")
    monkeypatch.setenv("B2CAL_BATCH_POLL_INTERVAL_S", "0.5")
    monkeypatch.setenv("B2CAL_LOCAL_MAX_PROCESSES", "2")


@pytest.mark.slow
def test_ten_percent_of_subjobs_failing_once_on_the_local_pool(toy_home, fast_batch):
    ten_runs(toy_home, "local")
    run_loop_to_the_end(loop_definitions())
    assert_only_the_broken_ones_ran_twice()


@pytest.fixture
def on_slurm(slurm_cluster, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster["SLURM_CONF"])
    monkeypatch.setenv("B2CAL_BATCH_POLL_INTERVAL_S", "1")
    return slurm_cluster


@pytest.mark.slow
@pytest.mark.slurm
def test_ten_percent_of_subjobs_failing_once_on_slurm(toy_home, fast_batch, on_slurm):
    ten_runs(toy_home, "slurm")
    run_loop_to_the_end(loop_definitions())
    assert_only_the_broken_ones_ran_twice()
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    assert {j.backend for j in service.job_rows("p1", "toy_a")} == {"slurm"}


def wrapped_on_path(bindir: Path, command: str, body: str) -> None:
    """A ``command`` first on PATH that runs ``body`` (bash) before handing over to the real one."""
    real = subprocess.run(["bash", "-c", f"command -v {command}"], capture_output=True, text=True)
    assert real.returncode == 0, f"{command} is not installed"
    script = bindir / command
    script.write_text(f'#!/bin/bash\n{body}\nexec {real.stdout.strip()} "$@"\n')
    script.chmod(0o755)


@pytest.mark.slow
@pytest.mark.slurm
def test_squeue_failing_three_times_in_a_row_does_not_stop_the_loop(toy_home, on_slurm, monkeypatch):
    """The 2nd to 4th status queries fail the way a busy slurmctld answers; five in a row are tolerated."""
    bindir = toy_home / "bin"
    bindir.mkdir()
    calls, submits = toy_home / "squeue-calls", toy_home / "sbatch-calls"
    wrapped_on_path(
        bindir,
        "squeue",
        f"n=$(( $(cat {calls} 2>/dev/null || echo 0) + 1 )); echo $n > {calls}\n"
        "if [ $n -ge 2 ] && [ $n -le 4 ]; then\n"
        '  echo "squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation" >&2; exit 1\n'
        "fi",
    )
    wrapped_on_path(bindir, "sbatch", f"echo x >> {submits}")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("B2CAL_BATCH_RETRY_DELAY_S", "1")
    make_site(backend="slurm")
    admin.register_files(toy.generate(toy_home / "data", range(1, 3), events=500), site_name="toy_site")
    make_processing("p1", range(1, 3))
    run_loop_to_the_end(loop_definitions())
    assert int(calls.read_text()) > 4  # the failures happened, and polling went on after them
    per_calibration = {c: tries_by_input("p1", c) for c in COLLECTED}
    assert {c: sorted(t.values()) for c, t in per_calibration.items()} == {
        "toy_a": [1, 1],
        "toy_b": [1, 1],
        "toy_c": [1, 1],
    }
    # one array per calibration, one for the cDST jobs and toy_a's one validation job: no job was
    # cancelled and submitted again
    assert len(submits.read_text().splitlines()) == len(COLLECTED) + 2
