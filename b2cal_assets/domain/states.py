"""The loop's state machine: the states of a calibration and of an attempt, and the moves between them.

A calibration's state in a processing (``processing_calibration.state``) and an attempt's state
(``attempt.state``) are stored as these values. The transition tables are the one place that says
which change of state is allowed; the loop consults them before every write (``loop/transitions.py``)
and refuses any other change, so a bug or a race cannot put a calibration where no way leads.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class CalibrationState(StrEnum):
    """Where a calibration stands in one processing (the manager's status view)."""

    WAITING = "waiting"  # its inputs (skims, upstream sign-offs) are not all there yet
    WINDOW_OPEN = "window_open"  # the expert may submit settings until the deadline
    SUBMITTED = "submitted"  # the loop asked Dagster for a run
    RUNNING = "running"  # an attempt runs
    FAILED = "failed"
    FINISHED = "finished"  # payloads recorded; awaiting checks and sign-off
    SIGNED_OFF = "signed_off"
    REJECTED = "rejected"
    EXCLUDED = "excluded"  # shown for an excluded calibration (the row's ``excluded`` flag); never stored


class AttemptState(StrEnum):
    """How one attempt of a calibration stands."""

    SUBMITTED = "submitted"
    HELD = "held"  # settings kept until the loop launches them (the deadline, a restart)
    RUNNING = "running"
    FAILED = "failed"
    FINISHED = "finished"
    CANCELLED = "cancelled"  # a manager restarted or excluded the calibration while it was live


class ProcessingState(StrEnum):
    """Whether the loop still works on a processing."""

    OPEN = "open"  # the loop opens windows, launches and retries its calibrations
    FINISHED = "finished"  # every calibration signed off or excluded; its staging tag is built
    CANCELLED = "cancelled"  # closed for good by a manager (``b2cal processing cancel``)


class SignoffDecision(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


_C = CalibrationState
_A = AttemptState

# (from, to) -> what makes the move. A write of the state a row already has is no move and always allowed.
CALIBRATION_TRANSITIONS: Mapping[tuple[CalibrationState, CalibrationState], str] = {
    (_C.WAITING, _C.WINDOW_OPEN): "tick: its inputs are ready",
    (_C.WAITING, _C.SUBMITTED): "tick: the cDST production's inputs are ready (it has no window)",
    (_C.WINDOW_OPEN, _C.SUBMITTED): "tick: the deadline passed",
    (_C.WINDOW_OPEN, _C.RUNNING): "begin_attempt: an expert's run inside the window",
    (_C.WINDOW_OPEN, _C.WAITING): "include: an excluded calibration comes back",
    (_C.SUBMITTED, _C.RUNNING): "begin_attempt: the loop's run starts",
    (_C.SUBMITTED, _C.FAILED): "tick: its runs kept ending without an attempt",
    (_C.SUBMITTED, _C.WINDOW_OPEN): "restart",
    (_C.SUBMITTED, _C.WAITING): "include",
    (_C.RUNNING, _C.FAILED): "fail_attempt, or tick: its run was cancelled or died too often",
    (_C.RUNNING, _C.FINISHED): "finish_attempt, or tick: the attempt had finished",
    (_C.RUNNING, _C.SIGNED_OFF): "complete_step: the cDST production is done",
    (_C.RUNNING, _C.WINDOW_OPEN): "restart",
    (_C.RUNNING, _C.WAITING): "include",
    (_C.FAILED, _C.RUNNING): "begin_attempt: a resume or a resubmission from the launchpad",
    (_C.FAILED, _C.WINDOW_OPEN): "submit (a resubmission) or restart",
    (_C.FAILED, _C.FINISHED): "upload_payloads",
    (_C.FAILED, _C.WAITING): "include",
    (_C.FINISHED, _C.SIGNED_OFF): "sign_off accept",
    (_C.FINISHED, _C.REJECTED): "sign_off reject",
    (_C.FINISHED, _C.RUNNING): "begin_attempt by the loop",
    (_C.FINISHED, _C.WINDOW_OPEN): "restart",
    (_C.FINISHED, _C.WAITING): "include",
    (_C.SIGNED_OFF, _C.REJECTED): "sign_off reject after an accept",
    (_C.SIGNED_OFF, _C.FINISHED): "upload_payloads",
    (_C.REJECTED, _C.SIGNED_OFF): "sign_off accept after a reject",
    (_C.REJECTED, _C.RUNNING): "begin_attempt: a resubmission from the launchpad",
    (_C.REJECTED, _C.WINDOW_OPEN): "submit (a resubmission) or restart",
    (_C.REJECTED, _C.FINISHED): "upload_payloads",
    (_C.REJECTED, _C.WAITING): "include",
}

# ``submitted`` is an attempt's state only inside the transaction that creates it (then held or running).
ATTEMPT_TRANSITIONS: Mapping[tuple[AttemptState, AttemptState], str] = {
    (_A.SUBMITTED, _A.HELD): "submit or restart: kept until the loop launches it",
    (_A.SUBMITTED, _A.RUNNING): "begin_attempt",
    (_A.HELD, _A.SUBMITTED): "begin_attempt: the loop launches the held settings",
    (_A.HELD, _A.CANCELLED): "a newer submission, a restart or an exclusion replaces it",
    (_A.RUNNING, _A.FAILED): "fail_attempt, or tick: its run was cancelled or died too often",
    (_A.RUNNING, _A.FINISHED): "finish_attempt or complete_step",
    (_A.RUNNING, _A.CANCELLED): "restart or exclude",
    (_A.FAILED, _A.RUNNING): "begin_attempt: a re-execution resumes it",
}

_P = ProcessingState

PROCESSING_TRANSITIONS: Mapping[tuple[ProcessingState, ProcessingState], str] = {
    (_P.OPEN, _P.FINISHED): "tick: every calibration is signed off or excluded",
    (_P.FINISHED, _P.OPEN): "an upload or a restart reopens it",
    (_P.OPEN, _P.CANCELLED): "cancel",
    (_P.FINISHED, _P.CANCELLED): "cancel",
}

DONE_STATES = frozenset({_C.SIGNED_OFF, _C.EXCLUDED})  # what a downstream calibration waits for
LIVE_ATTEMPT_STATES = frozenset({_A.HELD, _A.SUBMITTED, _A.RUNNING})  # cancelled by a restart or an exclusion
END_ATTEMPT_STATES = frozenset({_A.FAILED, _A.FINISHED, _A.CANCELLED})
RESUBMIT_STATES = frozenset({_C.FAILED, _C.REJECTED})  # an expert or a manager may submit new settings
ACTIVE_STATES = frozenset({_C.SUBMITTED, _C.RUNNING, _C.FINISHED})  # a run is asked for, runs or is checked
MOVING_STATES = ACTIVE_STATES | {_C.WINDOW_OPEN}  # the loop moves it on without anyone's help
UPLOADABLE_STATES = (_C.FINISHED, _C.SIGNED_OFF, _C.REJECTED, _C.FAILED)  # payloads can be replaced
SIGNABLE_STATES = frozenset({_C.FINISHED, _C.SIGNED_OFF, _C.REJECTED})  # has a finished attempt to decide on
USED_DOWNSTREAM_STATES = frozenset({_C.RUNNING, _C.FINISHED, _C.SIGNED_OFF})  # an upload's dependents


class TransitionRefused(ValueError):
    """A change of state the transition table does not hold."""


def calibration_may_move(old: str, new: str) -> bool:
    """True if a calibration in ``old`` may be put in ``new`` (staying put is always allowed)."""
    return old == new or (CalibrationState(old), CalibrationState(new)) in CALIBRATION_TRANSITIONS


def attempt_may_move(old: str, new: str) -> bool:
    """True if an attempt in ``old`` may be put in ``new`` (staying put is always allowed)."""
    return old == new or (AttemptState(old), AttemptState(new)) in ATTEMPT_TRANSITIONS


def check_calibration_move(old: str, new: str, what: str) -> None:
    """Raise ``TransitionRefused`` naming ``what`` and the ways out of ``old`` if the move is not allowed."""
    if not calibration_may_move(old, new):
        ways = sorted(str(to) for frm, to in CALIBRATION_TRANSITIONS if frm == old)
        raise TransitionRefused(
            f"{what} is {old} and cannot become {new}; from {old} it can become {', '.join(ways) or 'nothing'}"
        )


def check_processing_move(old: str, new: str, what: str) -> None:
    """Raise ``TransitionRefused`` naming ``what`` if a processing may not go from ``old`` to ``new``."""
    if old != new and (ProcessingState(old), ProcessingState(new)) not in PROCESSING_TRANSITIONS:
        ways = sorted(str(to) for frm, to in PROCESSING_TRANSITIONS if frm == old)
        raise TransitionRefused(
            f"{what} is {old} and cannot become {new}; from {old} it can become {', '.join(ways) or 'nothing'}"
        )


def check_attempt_move(old: str, new: str, what: str) -> None:
    """Raise ``TransitionRefused`` naming ``what`` if an attempt may not go from ``old`` to ``new``."""
    if not attempt_may_move(old, new):
        ways = sorted(str(to) for frm, to in ATTEMPT_TRANSITIONS if frm == old)
        raise TransitionRefused(
            f"{what} is {old} and cannot become {new}; from {old} it can become {', '.join(ways) or 'nothing'}"
        )
