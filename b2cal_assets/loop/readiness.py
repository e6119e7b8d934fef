"""Pure rules: which steps of a processing may open their window, which must be submitted, when it is done."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime

from b2cal_assets.domain.states import DONE_STATES, CalibrationState
from b2cal_assets.loop.steps import StepInfo


@dataclass(frozen=True)
class StepStatus:
    state: CalibrationState
    excluded: bool = False
    deadline: datetime | None = None


def upstream_done(step: StepInfo, statuses: Mapping[str, StepStatus]) -> bool:
    return all(statuses[d].state in DONE_STATES for d in step.depends_on if d in statuses)


def missing_inputs(step: StepInfo, statuses: Mapping[str, StepStatus], available_tags: Set[str]) -> list[str]:
    """What a step still waits for, in words a person reads ("caf_cdc signed off", "skim hadron_calib")."""
    missing = [
        f"{d} signed off" for d in step.depends_on if d in statuses and statuses[d].state not in DONE_STATES
    ]
    missing += [f"skim {tag}" for tag in step.raw_data_names if tag not in available_tags]
    return missing


def steps_to_open(
    steps: Mapping[str, StepInfo], statuses: Mapping[str, StepStatus], available_tags: Set[str]
) -> list[str]:
    return [
        name
        for name, step in steps.items()
        if statuses[name].state == CalibrationState.WAITING
        and not statuses[name].excluded
        and not missing_inputs(step, statuses, available_tags)
    ]


def steps_past_deadline(statuses: Mapping[str, StepStatus], now: datetime) -> list[str]:
    return [
        name
        for name, status in statuses.items()
        if status.state == CalibrationState.WINDOW_OPEN
        and status.deadline is not None
        and status.deadline <= now
    ]


def blocked_by_rejection(
    order: Sequence[str], steps: Mapping[str, StepInfo], statuses: Mapping[str, StepStatus]
) -> dict[str, str]:
    """Steps (in topological ``order``) that cannot run because an upstream step was rejected."""
    blocked: dict[str, str] = {}
    for name in order:
        for dep in steps[name].depends_on:
            if dep in statuses and statuses[dep].state == CalibrationState.REJECTED:
                blocked[name] = dep
            elif dep in blocked:
                blocked[name] = blocked[dep]
    return blocked


def processing_finished(statuses: Mapping[str, StepStatus]) -> bool:
    return bool(statuses) and all(s.state in DONE_STATES or s.excluded for s in statuses.values())
