"""A full disk under the whole loop (a small tmpfs, really full): in the work directory and in the
payload store, before a run and while its jobs run. The run fails with an error naming the path it could
not write, nothing half-written is left, and the attempt is resumable: once there is room again the loop
restarts it from its checkpoint by itself (``loop/disk_room.py``; a manager's restart does the same),
a finished subjob is not run again, and the loop ends signed off with one extra attempt.
"""

from __future__ import annotations

import json
import threading
import time

import dagster as dg

from b2cal_assets import home
from b2cal_assets.cli import main
from b2cal_assets.db.engine import database_url
from b2cal_assets.db.repo import attempts, audit, jobs
from b2cal_assets.loop.disk_room import NO_ROOM, ROOM_AGAIN
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, toy_loop_one  # noqa: F401
from b2cal_assets_tests.defs.test_batch_faults import STEPS
from b2cal_assets_tests.fixtures.disk import fill
from b2cal_assets_tests.loop.daemon_like import Daemon
from b2cal_assets_tests.loop.helpers import collector_jobs


def service():
    return loop_service(database_url(), str(TOY_SCRIPTS))


def failure_of(results, step: str) -> str:
    (result,) = [r for request, r in results if request.run_key.split("|")[1] == step]
    assert not result.success
    errors = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
    return " ".join(error.to_string() for error in errors if error is not None)


def free(disk) -> None:
    for filler in disk.glob(".filler*"):
        filler.unlink()


def loop_actions(step: str) -> list[str]:
    """What the loop itself recorded for ``step``, oldest first."""
    with service().session() as s:
        entries = audit.list_audit(s, processing="p1", calibration=step, user="auto", limit=100)
        return [e.action for e in reversed(entries)]


def toy_a_attempts() -> list[tuple[int, str, str]]:
    with service().session() as s:
        return [(a.number, a.state, a.error) for a in attempts.list_attempts(s, "p1", "toy_a")]


def test_a_full_work_directory_names_the_path_and_a_restart_finishes(
    toy_loop_one,  # noqa: F811
    toy_defs,
    loop_disk,
):
    (toy_loop_one / "work").symlink_to(loop_disk)
    fill(loop_disk)
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        message = failure_of(daemon.settle(max_rounds=1), "toy_a")
        workdir = home.attempt_work_dir("p1", "toy_a", 1).resolve()  # the path on the full disk
        assert "No space left on device" in message and f"cannot write {workdir}" in message, message
        ((number, state, error),) = toy_a_attempts()
        assert (number, state) == (1, "failed") and f"cannot write {workdir}" in error
        written = [p for p in loop_disk.rglob("*") if p.is_file() and not p.name.startswith(".filler")]
        assert not [p for p in written if p.stat().st_size == 0], written  # no 0-byte or half file
        free(loop_disk)  # the operator makes room
        assert main(["manage", "restart", "p1", "toy_a", "--user", "mgr"]) == 0
        for _ in range(4):
            daemon.settle()
    assert service().step_states("p1") == dict.fromkeys(STEPS, "signed_off")
    assert [(n, s) for n, s, _ in toy_a_attempts()] == [(1, "failed"), (2, "finished")]


def test_a_full_payload_store_names_the_path_and_the_loop_resumes_without_rerunning(
    toy_loop_one,  # noqa: F811
    toy_defs,
    loop_disk,
):
    (toy_loop_one / "payloads").symlink_to(loop_disk)
    fill(loop_disk)
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        message = failure_of(daemon.settle(max_rounds=1), "toy_a")
        target = home.payload_dir("p1", "toy_a", 1) / "outputdb"
        assert f"cannot write {target}: No space left on device" in message, message
        assert not target.exists()  # no 0-byte or half payload in the store
        assert [(n, s) for n, s, _ in toy_a_attempts()] == [(1, "failed")]
        outputs = home.attempt_work_dir("p1", "toy_a", 1) / "toy_a" / "0" / "collector_output"
        before = {p.name: (p / "exit_code").stat().st_mtime_ns for p in outputs.iterdir()}
        assert len(before) == 2
        (note,) = [r.recovery for r in service().status_rows("p1") if r.step == "toy_a"]
        assert note.startswith("no_room: ") and f"cannot write {target}" in note, note  # b2cal status
        daemon.settle()
        assert [(n, s) for n, s, _ in toy_a_attempts()] == [(1, "failed")]  # no room yet: it waits
        free(loop_disk)  # room again: the loop resumes the attempt by itself, no manager needed
        for _ in range(4):
            daemon.settle()
    assert service().step_states("p1") == dict.fromkeys(STEPS, "signed_off")
    assert [(n, s) for n, s, _ in toy_a_attempts()] == [(1, "failed"), (2, "finished")]
    assert loop_actions("toy_a") == [NO_ROOM, "restart", ROOM_AGAIN]
    after = {p.name: (p / "exit_code").stat().st_mtime_ns for p in outputs.iterdir()}
    assert after == before  # the restart took the finished subjobs from the checkpoint
    assert not [f for p in outputs.iterdir() for f in p.iterdir() if f.name.startswith("stdout.")]
    with service().session() as s:
        second = attempts.list_attempts(s, "p1", "toy_a")[1]
        assert sorted(j.tries for j in collector_jobs(jobs.list_jobs(s, second.id))) == [1, 1]
    (payload,) = service().current_payloads("p1", "toy_a")
    assert str(home.payload_dir("p1", "toy_a", 2)) in payload.file


def fill_while_toy_a_runs(disk, log: list[str], stop: threading.Event) -> None:
    """A filler file written once toy_a's collector jobs are in the batch system; removed (room again)
    once the attempt is recorded failed, after reading what ``b2cal status`` says of it."""
    state = home.attempt_work_dir("p1", "toy_a", 1) / "toy_a" / "0" / "collector_input" / "jobs.json"
    while not stop.is_set():
        try:
            entries = list(json.loads(state.read_text())["jobs"].values())
        except (OSError, ValueError, KeyError):
            entries = []
        if len(entries) == 2 and all(e.get("job_id") for e in entries):
            break
        time.sleep(0.1)
    else:
        return
    fill(disk)
    log.append("full")
    while not stop.is_set():
        if [s for _, s, _ in toy_a_attempts()] == ["failed"]:
            (row,) = [r for r in service().status_rows("p1") if r.step == "toy_a"]
            log.append(row.recovery)
            break
        time.sleep(0.2)
    else:
        return
    free(disk)
    log.append("freed")


def test_a_disk_that_fills_mid_run_is_resumed_by_the_loop_once_there_is_room(
    toy_loop_one,  # noqa: F811
    toy_defs,
    loop_disk,
    monkeypatch,
):
    monkeypatch.setenv("B2CAL_TOY_SLEEP_S", "3")  # the disk fills while toy_a's two subjobs run
    monkeypatch.setenv("B2CAL_LOCAL_MAX_PROCESSES", "2")
    (toy_loop_one / "work").symlink_to(loop_disk)
    log: list[str] = []
    stop = threading.Event()
    filler = threading.Thread(target=fill_while_toy_a_runs, args=(loop_disk, log, stop), daemon=True)
    filler.start()
    try:
        with dg.instance_for_test() as instance:
            daemon = Daemon(toy_defs, instance)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                daemon.settle()
                if set(service().step_states("p1").values()) == {"signed_off"}:
                    break
                time.sleep(0.5)
            runs = daemon.results
    finally:
        stop.set()
        filler.join(timeout=60)
    assert log[0] == "full" and log[-1] == "freed", log
    assert (
        log[1].startswith("no_room: attempt 1 of toy_a ran out of room") and "resumes it by itself" in log[1]
    )
    assert service().step_states("p1") == dict.fromkeys(STEPS, "signed_off")
    # one extra attempt, started by the loop: the failed one resumed, nothing else run twice
    ((n1, s1, error), (n2, s2, _)) = toy_a_attempts()
    assert (n1, s1, n2, s2) == (1, "failed", 2, "finished"), error
    assert loop_actions("toy_a") == [NO_ROOM, "restart", ROOM_AGAIN]
    keys = [request.run_key for request, _ in runs]
    assert len(keys) == len(set(keys))
    assert sorted(k.split("|")[1] for k in keys) == sorted([*STEPS, "toy_a"])  # toy_a twice, the rest once
    with service().session() as s:
        for step in STEPS[1:]:
            assert [a.state for a in attempts.list_attempts(s, "p1", step)] == ["finished"], step
        second = attempts.list_attempts(s, "p1", "toy_a")[1]
        assert second.workdir == str(home.attempt_work_dir("p1", "toy_a", 1))  # resumed from its checkpoint
        assert len(collector_jobs(jobs.list_jobs(s, second.id))) == 2
    # no payload lost or doubled: one current revision, the store holds whole files of attempt 2 only
    (payload,) = service().current_payloads("p1", "toy_a")
    assert str(home.payload_dir("p1", "toy_a", 2)) in payload.file
    assert not home.payload_dir("p1", "toy_a", 1).exists()
    stored = {p.name: p.stat().st_size for p in (home.payload_dir("p1", "toy_a", 2) / "outputdb").iterdir()}
    assert sorted(stored) == ["database.txt", "dbstore_ToyA_rev_1.root"] and all(stored.values()), stored
    assert not [p for p in loop_disk.rglob("*.tmp*")]  # no temporary file left on the filled disk
