"""Who may launch or sign off a calibration, checked by the loop itself, behind the web layer's guard.

The web guard decides before Dagster runs anything; this check runs again where the work happens
(the payloads and sign-off assets, the calibration pages), on what is actually running, so a hole in
one layer is not a hole in the system. Allowed: the loop itself (``auto``), the calibration's assigned
expert in that processing, or a calibration manager or admin (the role the web layer stamped on the
run, ``b2cal/role``; clients cannot set ``b2cal/*`` tags).
"""

from __future__ import annotations

import unicodedata

from b2cal_assets.db.errors import NotFound
from b2cal_assets.db.repo import calibrations
from b2cal_assets.loop.records import AUTO_USER, LoopError

ROLE_TAG = "b2cal/role"
OVERRIDING_ROLES = frozenset({"manager", "admin"})
RESERVED_USERNAMES = frozenset({AUTO_USER, "ui"})  # the loop's automatic user, the bare UI (defs/assets.py)


def is_reserved_username(username: str) -> bool:
    """A directory or OS user named like the loop's own users could otherwise pass as them."""
    folded = unicodedata.normalize("NFKC", username).strip().casefold()
    return folded in RESERVED_USERNAMES or "(no-auth)" in folded


def assigned_expert(service, processing: str, calibration: str) -> str:
    """The expert of ``calibration`` in ``processing``: the database's assignment, else the script's."""
    with service.session() as s:
        try:
            expert = calibrations.get_calibration(s, processing, calibration).expert_username
        except NotFound:
            expert = ""
    if not expert and calibration in service.scripts.calibrations:
        expert = service.scripts.calibrations[calibration].settings.expert_username or ""
    return expert


def require_authority(service, processing: str, calibration: str, *, by: str, role: str, action: str) -> None:
    """Raise ``LoopError`` unless ``by`` (with ``role``) may ``action`` this calibration in this processing."""
    if by == AUTO_USER or role.strip().lower() in OVERRIDING_ROLES:
        return
    expert = assigned_expert(service, processing, calibration)
    if expert and expert == by:
        return
    owner = f"assigned to {expert}" if expert else "assigned to nobody"
    raise LoopError(
        f"{by} may not {action} {calibration} in processing {processing}: it is {owner}; "
        "ask a calibration manager"
    )
