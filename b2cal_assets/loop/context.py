"""What every part of the loop shares: the database, the scripts and their steps, the clock, ticket messages.

One frozen ``LoopContext`` per ``LoopService``; each part (``Ticker``, ``AttemptRules``, ``Management``,
...) receives it instead of reaching for attributes of a common base class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from b2cal_assets.caf.scripts import ScriptSet
from b2cal_assets.db import engine as db_engine
from b2cal_assets.db.models import utcnow
from b2cal_assets.loop.notices import LoopEvent, post_in_session
from b2cal_assets.loop.records import LoopError
from b2cal_assets.loop.steps import CDST_STEP, StepInfo, build_steps, step_graph
from b2cal_assets.tickets.messages import TicketEvent
from b2cal_assets.tickets.outbox import TicketOutbox

SessionFactory = Callable[[], AbstractContextManager[Session]]
Clock = Callable[[], datetime]


class HasSessions(Protocol):
    """Anything that opens transactions on the calibration database (``LoopService``, ``LoopContext``)."""

    def session(self) -> AbstractContextManager[Session]: ...


def database_sessions(database_url: str) -> SessionFactory:
    """One transaction per ``with`` block on the process-wide engine of ``database_url``."""

    @contextmanager
    def session() -> Iterator[Session]:
        with db_engine.session_scope(db_engine.make_engine(database_url)) as s:
            yield s

    return session


@dataclass(frozen=True)
class LoopContext:
    """The loop's shared, immutable setup; ``steps`` and ``order`` follow from ``scripts``."""

    database_url: str
    scripts: ScriptSet
    session: SessionFactory
    clock: Clock = utcnow
    steps: dict[str, StepInfo] = field(default_factory=dict)
    order: tuple[str, ...] = ()
    outbox: TicketOutbox = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outbox", TicketOutbox(self.session))

    @classmethod
    def create(cls, database_url: str, scripts: ScriptSet, clock: Clock = utcnow) -> LoopContext:
        steps = build_steps(scripts.calibrations)
        return cls(
            database_url=database_url,
            scripts=scripts,
            session=database_sessions(database_url),
            clock=clock,
            steps=steps,
            order=tuple(step_graph(steps).order()),
        )

    def notify(self, *events: LoopEvent | TicketEvent) -> None:
        """Ticket messages, stored once each (dedup keys) and sent to Jira by the ticket sensor.

        Called after the state change has been committed, never inside an open session.
        """
        for event in events:
            if event.calibration == CDST_STEP:
                continue
            if isinstance(event, LoopEvent):  # the loop's own notices (loop/notices.py)
                with self.session() as s:
                    post_in_session(s, [event])
            else:
                self.outbox.post(event)

    def require_calibration(self, calibration: str) -> None:
        """Raise ``LoopError`` naming the known calibrations unless ``calibration`` is one of them."""
        if calibration not in self.scripts.calibrations:
            known = ", ".join(sorted(self.scripts.calibrations))
            raise LoopError(f"no calibration {calibration!r}; known: {known}")

    def ancestors(self, name: str) -> set[str]:
        """Every step upstream of ``name`` (directly or through others)."""
        seen: set[str] = set()
        todo = list(self.steps[name].depends_on)
        while todo:
            dep = todo.pop()
            if dep not in seen and dep in self.steps:
                seen.add(dep)
                todo.extend(self.steps[dep].depends_on)
        return seen

    def dependents(self, calibration: str) -> set[str]:
        """Every step downstream of ``calibration`` (directly or through others)."""
        seen: set[str] = set()
        todo = [calibration]
        while todo:
            current = todo.pop()
            for name, step in self.steps.items():
                if current in step.depends_on and name not in seen:
                    seen.add(name)
                    todo.append(name)
        return seen
