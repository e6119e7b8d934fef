"""The loop's own restart after a full disk (``loop/disk_room.py``): an attempt that failed for lack of
room is resumed once there is room again, at most three times in a row; then it waits for a manager,
whose restart starts the count again. A failure that has nothing to do with room is left to people.
"""

from __future__ import annotations

import errno
from datetime import timedelta
from pathlib import Path

import pytest

from b2cal_assets.files import WriteError
from b2cal_assets.loop import disk_room
from b2cal_assets.loop.disk_room import MAX_ROOM_RESUMES, NO_ROOM, ROOM_AGAIN, Room, short_of_room
from b2cal_assets.loop.service import AUTO_USER
from b2cal_assets_tests.loop.conftest import T0
from b2cal_assets_tests.loop.helpers import audit_actions, messages


def full_disk(path: Path) -> WriteError:
    return WriteError(path / "state.json", OSError(errno.ENOSPC, "No space left on device"))


def attempt_fails_for_lack_of_room(loop, clock, minutes: int):
    """toy_a's next attempt starts and fails on a full disk; returns its ticket."""
    clock.now = T0 + timedelta(minutes=minutes)
    ticket = loop.begin_attempt(
        "prompt_now", "toy_a", submitted_by=AUTO_USER, expert_config={}, job_config={}
    )
    try:
        raise full_disk(ticket.workdir)
    except WriteError as exc:
        loop.fail_attempt(ticket, f"WriteError: {exc}", cause=exc)
    return ticket


def launched(loop, clock) -> list[str]:
    return [x.step for x in loop.tick(now=clock.now).launches if x.processing == "prompt_now"]


def loop_entries(loop) -> list[tuple[str, dict]]:
    return [(a, d) for u, a, d in audit_actions(loop, "prompt_now", "toy_a") if u == AUTO_USER]


def test_three_resumes_then_a_manager_then_three_more(loop, clock):
    loop.tick(now=T0)
    for n in range(1, MAX_ROOM_RESUMES + 1):
        ticket = attempt_fails_for_lack_of_room(loop, clock, 10 * n)
        (mark,) = [d for a, d in loop_entries(loop) if a == NO_ROOM and d["attempt"] == n]
        assert mark["path"] == str(ticket.workdir / "state.json")
        assert f"resume {n} of at most {MAX_ROOM_RESUMES}" in mark["message"]
        (row,) = [r for r in loop.status_rows("prompt_now") if r.step == "toy_a"]
        assert row.state == "failed" and row.recovery.startswith("no_room: ")  # b2cal status says why
        assert launched(loop, clock) == ["toy_a"]  # room again: the loop restarted it, from the checkpoint
        assert loop.step_states("prompt_now")["toy_a"] == "submitted"
    # the fourth full disk in a row: no more automatic resumes
    attempt_fails_for_lack_of_room(loop, clock, 100)
    (last,) = [d for a, d in loop_entries(loop) if a == NO_ROOM and d["attempt"] == MAX_ROOM_RESUMES + 1]
    assert "waits for a manager" in last["message"] and "b2cal manage restart" in last["message"]
    assert launched(loop, clock) == []
    assert loop.step_states("prompt_now")["toy_a"] == "failed"
    actions = [a for a, _ in loop_entries(loop)]
    assert actions.count(ROOM_AGAIN) == MAX_ROOM_RESUMES and actions.count(NO_ROOM) == MAX_ROOM_RESUMES + 1
    kinds = [m.kind for m in messages(loop, "prompt_now", "toy_a")]
    assert kinds.count("loop_no_room") == MAX_ROOM_RESUMES + 1 and kinds.count("loop_room_again") == 3
    # a manager's restart: the loop may resume again after the next full disk
    assert loop.restart("prompt_now", "toy_a", by="mgr") == MAX_ROOM_RESUMES + 2
    assert launched(loop, clock) == ["toy_a"]
    attempt_fails_for_lack_of_room(loop, clock, 200)
    assert launched(loop, clock) == ["toy_a"]


def test_no_resume_while_the_disk_is_still_full(loop, clock, monkeypatch):
    loop.tick(now=T0)
    ticket = attempt_fails_for_lack_of_room(loop, clock, 10)
    monkeypatch.setattr(disk_room, "room_at", lambda path: Room(Path(path), 4096, 16 << 20, 10))
    assert launched(loop, clock) == []
    assert loop.step_states("prompt_now")["toy_a"] == "failed"
    monkeypatch.undo()
    assert launched(loop, clock) == ["toy_a"]
    assert ticket.number == 1


def test_a_failure_not_about_room_is_left_to_people(loop, clock):
    loop.tick(now=T0)
    ticket = loop.begin_attempt(
        "prompt_now", "toy_a", submitted_by=AUTO_USER, expert_config={}, job_config={}
    )
    loop.fail_attempt(ticket, "collector subjob 0 failed", subjob="toy_a/0", log_tail="Traceback: boom")
    assert not [a for a, _ in loop_entries(loop) if a == NO_ROOM]
    assert launched(loop, clock) == []
    assert loop.step_states("prompt_now")["toy_a"] == "failed"


@pytest.mark.parametrize(
    ("error", "cause", "free", "expected"),
    [
        ("cannot write x: No space left on device", None, 1 << 30, "dir"),  # the words in a log
        ("exit code 1", None, 0, "dir"),  # a job that could not even write its log: the disk is full now
        ("exit code 1", None, 1 << 30, None),  # a job's own failure
        ("x", OSError(errno.EDQUOT, "Disk quota exceeded", "/q/file"), 1 << 30, "/q/file"),
        ("x", OSError(errno.EACCES, "Permission denied", "/q/file"), 1 << 30, None),
    ],
)
def test_why_an_attempt_failed_as_far_as_room_goes(tmp_path, monkeypatch, error, cause, free, expected):
    monkeypatch.setattr(disk_room, "room_at", lambda path: Room(Path(path), free, 1 << 34, 100))
    found = short_of_room(error, cause, [tmp_path])
    assert found == (tmp_path if expected == "dir" else (Path(expected) if expected else None))


def test_room_again_wants_more_than_a_few_bytes():
    total = 16 << 20
    assert not Room(Path("/x"), 1 << 20, total, 10).enough  # 1 MiB of 16: not room for a run yet
    assert Room(Path("/x"), 2 << 20, total, 10).enough  # over a tenth of a small filesystem
    assert not Room(Path("/x"), 100 << 20, 1 << 40, 10).enough  # 100 MiB of a 1 TiB store: not yet
    assert Room(Path("/x"), 300 << 20, 1 << 40, 10).enough
    assert not Room(Path("/x"), 300 << 20, 1 << 40, 0).enough  # no inode left
