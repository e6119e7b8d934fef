"""Who launched a run, read from its tags, and what the web's users may do through it."""

from __future__ import annotations

import dagster as dg

from b2cal_assets.defs.keys import LAUNCHED_BY_TAG, SUBMITTED_BY_TAG, USER_TAG
from b2cal_assets.loop.authority import ROLE_TAG, require_authority
from b2cal_assets.loop.records import AUTO_USER
from b2cal_assets.loop.service import LoopError, LoopService


def submitted_by(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> str:
    """Who launched the run: the logged-in user, the loop itself ("auto"), or the bare UI.

    A loop run says whose settings it runs in ``b2cal/submitted_by``; it still acts as the loop
    (``b2cal/launched_by``), which takes over that person's held attempt with its submitter.
    """
    tags = context.run.tags
    if tags.get(USER_TAG):
        return tags[USER_TAG]
    if tags.get(LAUNCHED_BY_TAG) == AUTO_USER or tags.get(SUBMITTED_BY_TAG) == AUTO_USER:
        return AUTO_USER
    return tags.get(SUBMITTED_BY_TAG) or tags.get("dagster/user") or "ui"


def check_authority(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, service: LoopService, calibration: str, action: str
) -> None:
    """A run launched through the web (``b2cal/user``) acts only for the assigned expert or a manager."""
    tags = context.run.tags
    if USER_TAG not in tags:
        return  # the loop's own runs (b2cal/submitted_by) and the operators' tools on the host
    try:
        require_authority(
            service,
            context.partition_key,
            calibration,
            by=tags[USER_TAG],
            role=tags.get(ROLE_TAG, ""),
            action=action,
        )
    except LoopError as exc:
        raise dg.Failure(description=str(exc)) from None
