"""Sign-off: accepting or rejecting a calibration's latest finished attempt."""

from __future__ import annotations

from sqlalchemy.orm import Session

from b2cal_assets.db.models import Attempt
from b2cal_assets.db.repo import attempts, audit, calibrations, condb, signoffs
from b2cal_assets.domain.states import SIGNABLE_STATES, CalibrationState, SignoffDecision
from b2cal_assets.loop.condb import condb_tag_name, upload_moment
from b2cal_assets.loop.context import LoopContext
from b2cal_assets.loop.decisions import RUN_ID_KEY
from b2cal_assets.loop.records import LoopError
from b2cal_assets.loop.steps import CDST_STEP
from b2cal_assets.loop.transitions import move_calibration
from b2cal_assets.tickets import messages as ticket_events


class SignOff:
    """An expert's, a manager's or the automatic policy's decision on the payloads."""

    def __init__(self, ctx: LoopContext) -> None:
        self.ctx = ctx

    def sign_off(
        self,
        processing: str,
        calibration: str,
        *,
        decision: str,
        by: str,
        comment: str = "",
        automatic: bool,
        dagster_run_id: str = "",
        retried: bool = False,
    ) -> CalibrationState:
        """Accept or reject the latest finished attempt; returns the new state.

        ``dagster_run_id``: the run of the sign-off asset that made the decision (it is in Dagster then);
        without it the decisions sensor reports it to Dagster (``loop/decisions.py``). ``retried``: this
        call repeats one whose COMMIT may have gone through unanswered (the database restarted); the same
        decision already recorded for the same attempt is then not recorded twice.
        """
        try:
            verdict = SignoffDecision(decision)
        except ValueError:
            raise LoopError(f"a sign-off decision is 'accept' or 'reject', not {decision!r}") from None
        with self.ctx.session() as s:
            row = calibrations.get_calibration(s, processing, calibration)
            if row.state not in SIGNABLE_STATES:
                raise LoopError(
                    f"{calibration} in {processing} has no finished attempt to sign off (state: {row.state})"
                )
            latest = attempts.latest_attempt(s, processing, calibration)
            accepted = verdict == SignoffDecision.ACCEPT
            state = CalibrationState.SIGNED_OFF if accepted else CalibrationState.REJECTED
            done = (
                retried
                and row.state == state
                and self._recorded(s, processing, calibration, latest, verdict, by, comment)
            )
            if not done:  # (done: the first try's COMMIT went through; only its notice may be missing)
                signoffs.record_signoff(
                    s,
                    processing,
                    calibration,
                    verdict,
                    by,
                    comment=comment,
                    automatic=automatic,
                    attempt_id=latest.id if latest else None,
                )
                move_calibration(s, processing, calibration, state)
                if accepted and calibration != CDST_STEP and upload_moment() == "signoff":
                    condb.mark_condb_due(s, processing, condb_tag_name(processing))
                if not automatic:
                    details = {"comment": comment, **({RUN_ID_KEY: dagster_run_id} if dagster_run_id else {})}
                    audit.record_audit(s, by, f"signoff_{verdict}", processing, calibration, details)
            number = latest.number if latest else 0
        if accepted:  # notices are stored once each (dedup keys), so a retry posting again is harmless
            self.ctx.notify(ticket_events.SignedOff(processing, calibration, number, by, automatic, comment))
        else:
            self.ctx.notify(ticket_events.Rejected(processing, calibration, number, by, comment))
        return state

    @staticmethod
    def _recorded(
        s: Session,
        processing: str,
        calibration: str,
        latest: Attempt | None,
        verdict: SignoffDecision,
        by: str,
        comment: str,
    ) -> bool:
        """True if the newest sign-off is this very decision on this attempt."""
        last = signoffs.latest_signoff(s, processing, calibration)
        return (
            last is not None
            and last.attempt_id == (latest.id if latest else None)
            and last.decision == verdict
            and last.by == by
            and last.comment == comment
        )
