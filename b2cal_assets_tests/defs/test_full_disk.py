"""A full disk under the whole loop (a small tmpfs, really full): in the work directory and in the
payload store. The run fails with an error naming the path it could not write, nothing half-written is
left, and once there is room again a manager's restart resumes the attempt from its checkpoint: a
finished subjob is not run again, and the loop ends signed off.
"""

from __future__ import annotations

import dagster as dg

from b2cal_assets import home
from b2cal_assets.cli import main
from b2cal_assets.db.engine import database_url
from b2cal_assets.db.repo import attempts, jobs
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, toy_loop_one  # noqa: F401
from b2cal_assets_tests.defs.test_batch_faults import STEPS
from b2cal_assets_tests.fixtures.disk import fill
from b2cal_assets_tests.loop.daemon_like import Daemon


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


def test_a_full_payload_store_names_the_path_and_a_restart_records_without_rerunning(
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
        free(loop_disk)
        assert main(["manage", "restart", "p1", "toy_a", "--user", "mgr"]) == 0
        for _ in range(4):
            daemon.settle()
    assert service().step_states("p1") == dict.fromkeys(STEPS, "signed_off")
    assert [(n, s) for n, s, _ in toy_a_attempts()] == [(1, "failed"), (2, "finished")]
    after = {p.name: (p / "exit_code").stat().st_mtime_ns for p in outputs.iterdir()}
    assert after == before  # the restart took the finished subjobs from the checkpoint
    assert not [f for p in outputs.iterdir() for f in p.iterdir() if f.name.startswith("stdout.")]
    with service().session() as s:
        second = attempts.list_attempts(s, "p1", "toy_a")[1]
        assert sorted(j.tries for j in jobs.list_jobs(s, second.id)) == [1, 1]
    (payload,) = service().current_payloads("p1", "toy_a")
    assert str(home.payload_dir("p1", "toy_a", 2)) in payload.file
