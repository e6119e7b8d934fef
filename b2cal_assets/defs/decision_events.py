"""A person's decision made outside Dagster (the calibration page, the CLI) as events of the assets.

- a sign-off or reject: a materialisation of ``signoff/<calibration>`` in the processing's partition
  (so a dependent's launchpad no longer says an upstream sign-off is missing) and an evaluation of its
  ``accepted`` check, failed on a reject, so a rejected calibration is not green;
- anything else (a submission, a restart, an exclusion, a reassignment, an upload): an observation of
  ``payloads/<calibration>`` in that partition.

Each carries who decided, when, and what they said. A decision a Dagster run made is in that run's
events already: only its check result is left to it too (``defs/assets.py``), nothing is repeated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg

from b2cal_assets.defs.keys import CDST_KEY, SIGNOFF_CHECK, payloads_key, signoff_key
from b2cal_assets.loop.decisions import Decision
from b2cal_assets.loop.steps import CDST_STEP

OUTSIDE = "the calibration page or the b2cal command"


def _common(decision: Decision) -> dict[str, Any]:
    return {
        "decision": decision.decision,
        "by": decision.by,
        "at": f"{decision.at:%Y-%m-%d %H:%M:%S} UTC",
        "made_in": OUTSIDE,
        "audit_entry": decision.id,
    }


def _details(decision: Decision) -> dict[str, Any]:
    """The decision's own details, plain values as they are and the rest as JSON."""
    out: dict[str, Any] = {}
    for key, value in decision.details.items():
        if key in ("expert_config", "job_config") or isinstance(value, dict | list):
            out[key] = dg.MetadataValue.json(value)
        elif isinstance(value, str | int | float | bool):
            out[key] = value
        elif value is not None:
            out[key] = json.dumps(value, default=str)
    return out


def decision_events(decision: Decision, steps: Mapping[str, object]) -> list:
    """The Dagster events of one decision; none for a step the code location does not define."""
    if decision.calibration not in steps:
        return []
    if decision.is_signoff:
        if decision.dagster_run_id:
            return []  # the sign-off asset's run materialised it and evaluated its check
        comment = str(decision.details.get("comment", ""))
        accepted = decision.decision == "accept"
        metadata = {**_common(decision), "comment": comment, "automatic": False}
        verb = "accepted" if accepted else "rejected"
        description = f"{verb} by {decision.by}" + (f": {comment}" if comment else "")
        return [
            dg.AssetMaterialization(
                asset_key=signoff_key(decision.calibration),
                partition=decision.processing,
                description=description,
                metadata=metadata,
            ),
            dg.AssetCheckEvaluation(
                asset_key=signoff_key(decision.calibration),
                check_name=SIGNOFF_CHECK,
                passed=accepted,
                partition=decision.processing,
                description=description,
                metadata=metadata,
            ),
        ]
    if decision.dagster_run_id:
        return []  # e.g. a held submission launched from the UI: its run says so
    key = CDST_KEY if decision.calibration == CDST_STEP else payloads_key(decision.calibration)
    return [
        dg.AssetObservation(
            asset_key=key,
            partition=decision.processing,
            description=f"{decision.decision} by {decision.by}",
            metadata={**_details(decision), **_common(decision)},
        )
    ]
