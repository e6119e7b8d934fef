"""A full disk under an attempt: is that why it failed, and is there room again to resume it?

An attempt that fails because its work directory or the payload store ran out of room is not the
calibration's fault: its checkpoint is intact (every file is written atomically, ``files.py``), so once
there is room again the loop restarts it by itself from that checkpoint (``loop/tick.py``), at most
``MAX_ROOM_RESUMES`` times in a row; then it waits for a manager. The two moments are audit entries by
``auto``: ``loop_no_room`` when the attempt fails, ``loop_room_again`` when the loop resumes it.

Two thresholds, so a filesystem that is merely busy is neither mistaken for a full one nor resumed on
while it has no room for a run: *full* is under ``FULL_BYTES`` free (or no inode left); *room again* is
``ROOM_BYTES`` free, or ``ROOM_SHARE`` of a smaller filesystem.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from b2cal_assets.db.repo import attempts, audit, calibrations
from b2cal_assets.domain.states import AttemptState, CalibrationState
from b2cal_assets.loop.records import AUTO_USER

FULL_BYTES = 1024 * 1024  # less than this free: the filesystem is full
ROOM_BYTES = 256 * 1024 * 1024  # this much free (or ROOM_SHARE of a smaller filesystem): room again
ROOM_SHARE = 0.10
MAX_ROOM_RESUMES = 3  # automatic resumes in a row after a full disk; then a manager restarts it
NO_ROOM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
NO_ROOM_WORDS = ("No space left on device", "Disk quota exceeded")
NO_ROOM = "loop_no_room"
ROOM_AGAIN = "loop_room_again"
PEOPLE_RESET = frozenset({"restart", "submit", "resubmit", "include", "upload_payloads"})


@dataclass(frozen=True)
class Room:
    """The free space of the filesystem holding ``path``."""

    path: Path
    free_bytes: int
    total_bytes: int
    free_inodes: int

    @property
    def full(self) -> bool:
        return self.free_bytes < FULL_BYTES or self.free_inodes == 0

    @property
    def enough(self) -> bool:
        """Room for a run again: not just the few bytes a deleted temporary file gave back."""
        wanted = min(ROOM_BYTES, int(self.total_bytes * ROOM_SHARE))
        return self.free_bytes >= max(wanted, FULL_BYTES) and self.free_inodes != 0


def room_at(path: Path | str) -> Room | None:
    """The room where ``path`` is (or would be: its nearest existing parent); None if nothing exists."""
    here = Path(path)
    while not here.exists():
        if here.parent == here:
            return None
        here = here.parent
    try:
        st = os.statvfs(here)
    except OSError:
        return None
    # f_files == 0: the filesystem does not count inodes (some network filesystems)
    inodes = st.f_favail if st.f_files else -1
    return Room(Path(path), st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, inodes)


def no_room_in(exc: BaseException | None) -> Path | None:
    """The path a failure ran out of room at, if one of the errors behind it is a full disk or quota."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_ROOM_ERRNOS:
            named = getattr(exc, "path", None) or exc.filename
            return Path(named) if named else Path()
        exc = exc.__cause__ or exc.__context__
    return None


def short_of_room(error: str, cause: BaseException | None, watched: Iterable[Path]) -> Path | None:
    """Why an attempt failed, as far as room goes: the path it found full, or None.

    A full disk shows as an error of the run (``cause``), as words in a subjob's log, or, when a job
    could not even write its log, only as one of the attempt's directories (``watched``) being full now.
    """
    dirs = [Path(p) for p in watched]
    named = no_room_in(cause)
    if named is not None and str(named) not in ("", "."):
        return named
    full = [p for p in dirs if (room := room_at(p)) is not None and room.full]
    if named is not None or any(word in error for word in NO_ROOM_WORDS):
        return full[0] if full else (dirs[0] if dirs else Path())
    return full[0] if full else None


def room_again(paths: Iterable[Path | str]) -> bool:
    """Every one of ``paths`` (that can be looked at) has room for a run again."""
    rooms = [room_at(p) for p in paths]
    return all(r.enough for r in rooms if r is not None)


# --- the calibration database's side: what was recorded, what is due ---------------------------
def room_resumes(s: Session, processing: str, calibration: str) -> int:
    """The loop's resumes after a full disk since a person last restarted or submitted the step."""
    count = 0
    for entry in audit.list_audit(s, processing=processing, calibration=calibration, limit=500):
        if entry.action == ROOM_AGAIN:
            count += 1
        elif entry.user != AUTO_USER and entry.action in PEOPLE_RESET:
            break
    return count


def record_no_room(
    s: Session, processing: str, calibration: str, attempt: int, path: Path, watched: Iterable[Path]
) -> str:
    """The audit entry ``loop_no_room`` of an attempt that failed for lack of room; returns its message.

    Once per attempt: a failure recorded again (its first COMMIT went unanswered) adds nothing."""
    for entry in audit.list_audit(
        s, processing=processing, calibration=calibration, action=NO_ROOM, limit=20
    ):
        if entry.details.get("occurrence") == str(attempt):
            return str(entry.details.get("message", ""))
    done = room_resumes(s, processing, calibration)
    if done >= MAX_ROOM_RESUMES:
        then = (
            f"the loop resumed it {done} times after a full disk already, so it waits for a manager: "
            "make room, then b2cal manage restart (it resumes from the checkpoint)"
        )
    else:
        then = (
            "its checkpoint is kept and the loop resumes it by itself once there is room again "
            f"(resume {done + 1} of at most {MAX_ROOM_RESUMES})"
        )
    message = f"attempt {attempt} of {calibration} ran out of room: cannot write {path}; {then}."
    audit.record_audit(
        s,
        AUTO_USER,
        NO_ROOM,
        processing,
        calibration,
        {
            "message": message,
            "occurrence": str(attempt),
            "attempt": attempt,
            "path": str(path),
            "watched": [str(p) for p in watched],
        },
    )
    return message


@dataclass(frozen=True)
class RoomAgain:
    """A step whose latest attempt failed for lack of room, and there is room again."""

    calibration: str
    attempt: int
    path: str
    resume: int  # this resume's number, 1 .. MAX_ROOM_RESUMES


def resumes_due(s: Session, processing: str) -> list[RoomAgain]:
    """The failed steps the loop restarts now: no room was why, there is room again, resumes are left."""
    due = []
    for row in calibrations.list_calibrations(s, processing):
        if row.state != CalibrationState.FAILED or row.excluded:
            continue
        latest = attempts.latest_attempt(s, processing, row.calibration)
        if latest is None or latest.state != AttemptState.FAILED:
            continue
        marks = audit.list_audit(
            s, processing=processing, calibration=row.calibration, action=NO_ROOM, limit=20
        )
        mark = next((e for e in marks if e.details.get("occurrence") == str(latest.number)), None)
        if mark is None:
            continue
        done = room_resumes(s, processing, row.calibration)
        if done >= MAX_ROOM_RESUMES or not room_again(mark.details.get("watched") or [mark.details["path"]]):
            continue
        due.append(RoomAgain(row.calibration, latest.number, str(mark.details.get("path", "")), done + 1))
    return due


def record_room_again(s: Session, processing: str, due: RoomAgain, new_attempt: int) -> str:
    """The audit entry ``loop_room_again`` of the loop's restart; returns its message."""
    message = (
        f"there is room again where attempt {due.attempt} of {due.calibration} could not write {due.path}: "
        f"the loop restarted it as attempt {new_attempt}, which resumes from the checkpoint (finished subjobs "
        f"are kept; resume {due.resume} of at most {MAX_ROOM_RESUMES})."
    )
    audit.record_audit(
        s,
        AUTO_USER,
        ROOM_AGAIN,
        processing,
        due.calibration,
        {"message": message, "occurrence": str(due.attempt), "attempt": new_attempt, "path": due.path},
    )
    return message
