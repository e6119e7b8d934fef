"""What a person should do next: an expert's calibrations across the open processings, and for a
manager each processing's counts per state, its critical path and what blocks it.

Read through the status views (``loop/status.py``), so these pages say what ``b2cal status`` says.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from b2cal_assets.domain.states import CalibrationState
from b2cal_assets.loop.records import StepRow
from b2cal_assets.loop.service import LoopService

_C = CalibrationState

# what the expert must do, most urgent first; the rest is for them to watch
ACTION_KINDS = ("failure", "resubmit", "signoff", "submit")
DONE_STATES = frozenset({_C.SIGNED_OFF.value})


@dataclass(frozen=True)
class Todo:
    """What a step asks of its expert now: ``kind`` (submit, failure, signoff, resubmit, wait, watch,
    done), a sentence, and the part of the calibration page to go to."""

    kind: str
    text: str
    anchor: str

    @property
    def needs_action(self) -> bool:
        return self.kind in ACTION_KINDS


@dataclass(frozen=True)
class WorkItem:
    row: StepRow
    todo: Todo


@dataclass(frozen=True)
class Blocker:
    step: str
    state: str
    expert: str
    why: str


@dataclass(frozen=True)
class ProcessingOverview:
    """One processing as a manager sees it first."""

    processing: str
    counts: tuple[tuple[str, int], ...]  # state -> how many steps, in the states' order
    critical_path: tuple[str, ...]  # the longest chain of steps not yet signed off, in run order
    blockers: tuple[Blocker, ...]  # the steps at the head of that chain and why they hold it
    rows: tuple[StepRow, ...]  # after the filters
    experts: tuple[str, ...]  # everyone assigned a step in it (what the expert filter offers)


@dataclass(frozen=True)
class StatusFilters:
    processing: str = ""
    stage: str = ""
    state: str = ""
    expert: str = ""

    def keeps(self, row: StepRow) -> bool:
        return (
            (not self.stage or row.stage == self.stage)
            and (not self.state or shown_state(row) == self.state)
            and (not self.expert or row.expert == self.expert)
        )


def shown_state(row: StepRow) -> str:
    return _C.EXCLUDED.value if row.excluded else row.state


def countdown(deadline: datetime | None, now: datetime) -> str:
    """``in 5 h 12 min`` / ``passed 2 h ago``: the deadline as a person reads it."""
    if deadline is None:
        return ""
    seconds = int((deadline.replace(tzinfo=None) - now.replace(tzinfo=None)).total_seconds())
    minutes = abs(seconds) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = ([f"{days} d"] if days else []) + ([f"{hours} h"] if hours or days else []) + [f"{mins} min"]
    text = " ".join(parts[:2])
    return f"in {text}" if seconds >= 0 else f"passed {text} ago"


def todo_of(row: StepRow, now: datetime) -> Todo:
    """What the row's expert must do now, in their words."""
    state = row.state
    if row.excluded:
        return Todo("done", "excluded by a manager: nothing to do", "")
    if state == _C.WINDOW_OPEN:
        if row.attempt_state in ("held", "queued"):
            starts = "at the deadline" if row.attempt_state == "held" else "at the loop's next tick"
            whose = "the defaults" if row.submitted_by in ("", "auto") else f"{row.submitted_by}'s settings"
            return Todo(
                "watch",
                f"Attempt {row.attempts} ({whose}) starts {starts}; submitting again replaces it",
                "attempts",
            )
        when = (
            f"{row.deadline:%Y-%m-%d %H:%M} UTC, {countdown(row.deadline, now)}"
            if row.deadline
            else "the deadline"
        )
        return Todo("submit", f"Submit your settings before {when}", "form-submit")
    if state == _C.FAILED:
        return Todo("failure", f"Attempt {row.attempts} failed: look at the failure and resubmit", "failure")
    if state == _C.REJECTED:
        return Todo("resubmit", "Rejected: resubmit with corrected settings", "form-submit")
    if state == _C.FINISHED:
        return Todo("signoff", "Payloads ready: look at the plots and sign off", "plots")
    if state in (_C.SUBMITTED, _C.RUNNING):
        return Todo("watch", f"attempt {row.attempts or 1} is {state}", "attempts")
    if state == _C.WAITING:
        why = f"blocked: {row.blocked_by} was rejected" if row.blocked_by else "waiting for its inputs"
        return Todo("wait", why, "")
    return Todo("done", "signed off", "payloads")


def my_work(service: LoopService, username: str) -> list[WorkItem]:
    """The user's calibrations in every open processing, what to do first at the top (then by deadline)."""
    now = service.clock()
    items = [
        WorkItem(row, todo_of(row, now))
        for processing in service.open_processing_names()
        for row in service.status_rows(processing)
        if row.expert == username
    ]
    far = datetime.max

    def urgency(item: WorkItem) -> tuple[int, datetime, str, str]:
        rank = ACTION_KINDS.index(item.todo.kind) if item.todo.needs_action else len(ACTION_KINDS)
        deadline = item.row.deadline.replace(tzinfo=None) if item.row.deadline else far
        return (0 if item.todo.needs_action else 1, deadline, str(rank), item.row.processing + item.row.step)

    return sorted(items, key=urgency)


def critical_path(rows: Sequence[StepRow], depends_on: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The longest chain of steps still to be signed off (rows in run order): what sets the end."""
    open_steps = {r.step for r in rows if r.state not in DONE_STATES and not r.excluded}
    best: dict[str, tuple[int, str]] = {}
    for row in rows:  # run order: a step's dependencies come before it
        if row.step not in open_steps:
            continue
        before = [(best[d][0], d) for d in depends_on.get(row.step, ()) if d in best]
        length, parent = max(before) if before else (0, "")
        best[row.step] = (length + 1, parent)
    if not best:
        return ()
    step = max(best, key=lambda name: best[name][0])
    path = []
    while step:
        path.append(step)
        step = best[step][1]
    return tuple(reversed(path))


def _why(row: StepRow, now: datetime) -> str:
    expert = row.expert or "nobody"
    if row.state == _C.WINDOW_OPEN and row.attempt_state in ("held", "queued"):
        starts = "at the deadline" if row.attempt_state == "held" else "at the loop's next tick"
        return f"attempt {row.attempts} {row.attempt_state}: it starts {starts}"
    if row.state == _C.WINDOW_OPEN:
        return f"window open: {expert} submits, deadline {countdown(row.deadline, now) or 'not set'}"
    if row.state == _C.FAILED:
        return f"failed: {expert} resubmits (or a manager restarts or excludes it)"
    if row.state == _C.FINISHED:
        return f"finished: waiting for {expert}'s sign-off"
    if row.state == _C.REJECTED:
        return f"rejected: {expert} resubmits"
    if row.state == _C.WAITING:
        return f"blocked: {row.blocked_by} was rejected" if row.blocked_by else "waiting for its input data"
    return f"{row.state}: attempt {row.attempts or 1}"


def overview(service: LoopService, processing: str, filters: StatusFilters) -> ProcessingOverview:
    rows = service.status_rows(processing)
    counts: dict[str, int] = {}
    for row in rows:
        counts[shown_state(row)] = counts.get(shown_state(row), 0) + 1
    order = [s.value for s in CalibrationState]
    depends = {name: step.depends_on for name, step in service.steps.items()}
    path = critical_path(rows, depends)
    by_name = {r.step: r for r in rows}
    now = service.clock()
    head = [name for name in path if not any(d in path for d in depends.get(name, ()))]
    return ProcessingOverview(
        processing=processing,
        counts=tuple((s, counts[s]) for s in order if s in counts),
        critical_path=path,
        blockers=tuple(
            Blocker(name, by_name[name].state, by_name[name].expert, _why(by_name[name], now))
            for name in head
        ),
        rows=tuple(r for r in rows if filters.keeps(r)),
        experts=tuple(sorted({r.expert for r in rows if r.expert})),
    )


def overviews(service: LoopService, filters: StatusFilters) -> list[ProcessingOverview]:
    names: Iterable[str] = service.all_processing_names()
    if filters.processing:
        names = [n for n in names if n == filters.processing]
    return [overview(service, name, filters) for name in names]
