"""People's decisions on a calibration, wherever they were made, as one list a follower can replay.

The calibration page and the CLI change the loop without Dagster knowing; Dagster runs change it
with the calibration page knowing (the audit log). ``decisions_after`` reads the audit log from a
cursor so the Dagster side (``defs/sensors.py``: ``decisions_sensor``) can report each decision made
outside a Dagster run as an event of the calibration's assets, with who made it; a decision a run made
(``dagster_run_id`` in its details) is already in Dagster and is marked so.

``launch_origin`` answers the other half: who asked for the attempt a loop run is about to start, and
why (an expert's submission, a resubmission, a manager's restart, or the defaults at the deadline).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from b2cal_assets.db.repo import audit
from b2cal_assets.loop.records import AUTO_USER

# audit action -> the decision's name in Dagster's view
DECISION_ACTIONS = {
    "submit_held": "submission",
    "submit_queued": "submission",
    "resubmit": "resubmission",
    "restart": "restart",
    "exclude": "exclude",
    "include": "include",
    "reassign": "reassign",
    "upload_payloads": "upload",
    "signoff_accept": "accept",
    "signoff_reject": "reject",
}
SIGNOFF_DECISIONS = frozenset({"accept", "reject"})
RUN_ID_KEY = "dagster_run_id"  # in an audit entry's details: the decision was made by this Dagster run


@dataclass(frozen=True)
class Decision:
    """One person's decision on a calibration in a processing, as the audit log recorded it."""

    id: int
    at: datetime
    by: str
    decision: str  # a value of DECISION_ACTIONS
    processing: str
    calibration: str
    details: dict[str, Any]

    @property
    def dagster_run_id(self) -> str:
        """The Dagster run that made it (it is in Dagster already), or "" (the page, the CLI)."""
        return str(self.details.get(RUN_ID_KEY) or "")

    @property
    def is_signoff(self) -> bool:
        return self.decision in SIGNOFF_DECISIONS


def decisions_after(service, last_id: int, *, limit: int = 500) -> tuple[list[Decision], int]:
    """People's decisions recorded after audit entry ``last_id``, oldest first, and the new cursor.

    The cursor moves past every entry read (the loop's own entries included), so a follower that
    stores it reads each decision once.
    """
    with service.session() as s:
        entries = audit.entries_after(s, last_id, limit=limit)
        found = [
            Decision(
                id=e.id,
                at=e.at,
                by=e.user,
                decision=DECISION_ACTIONS[e.action],
                processing=e.processing,
                calibration=e.calibration,
                details=dict(e.details or {}),
            )
            for e in entries
            if e.action in DECISION_ACTIONS and e.user != AUTO_USER and e.processing and e.calibration
        ]
        return found, max([last_id, *(e.id for e in entries)])


@dataclass(frozen=True)
class LaunchOrigin:
    """Whose settings a loop launch runs, who asked for it and why (the run's tags say so)."""

    submitted_by: str = AUTO_USER  # whose settings: the held attempt's submitter, or auto (defaults)
    requested_by: str = AUTO_USER  # who asked for this run: the expert, a manager (restart), or auto
    reason: str = "deadline"  # submission | resubmission | restart | deadline


# a resubmission is also recorded as submit_held or submit_queued
ORIGIN_PRIORITY = ("restart", "resubmit", "submit_held", "submit_queued")


def launch_origin(s: Session, processing: str, calibration: str, held) -> LaunchOrigin:
    """Why the held attempt ``held`` (or, with None, the defaults) is launched, from the audit log."""
    if held is None:
        return LaunchOrigin()
    entries = audit.list_audit(s, processing=processing, calibration=calibration, limit=50)
    for action in ORIGIN_PRIORITY:
        for entry in entries:
            if entry.action == action and (entry.details or {}).get("attempt") == held.number:
                return LaunchOrigin(held.submitted_by, entry.user, DECISION_ACTIONS[action])
    return LaunchOrigin(held.submitted_by, held.submitted_by, "submission")


def shown_attempt_state(state: str, *, site_holds_jobs: bool) -> str:
    """An attempt's state in the words a person reads: a held attempt at a site that does not hold
    jobs until the deadline is queued (it starts at the loop's next tick), not held."""
    if state == "held":
        return "held until the deadline" if site_holds_jobs else "queued"
    return state
