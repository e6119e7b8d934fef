"""Who may change what: the rules of the served UI, free of GraphQL and HTTP.

- viewers change nothing;
- an expert may launch, re-execute, stop or sign off only the calibrations assigned to them, in a
  named processing (the partition);
- managers may do every calibration action (and manage processings);
- admins may do everything, including all that this project does not know about.

A calibration's assets are ``["payloads", <calibration>]`` and ``["signoff", <calibration>]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from b2cal_assets.web.roles import Role
from b2cal_assets.web.sessions import SessionUser

CALIBRATION_ASSET_PREFIXES = ("payloads", "signoff")

# (processing, calibration) -> the expert's user name, or None when nobody is assigned
AssignedExpert = Callable[[str, str], str | None]


def calibration_of(asset_key: Sequence[str]) -> str | None:
    """The calibration an asset key belongs to, or None for any other asset."""
    if len(asset_key) == 2 and asset_key[0] in CALIBRATION_ASSET_PREFIXES and asset_key[1]:
        return asset_key[1]
    return None


@dataclass(frozen=True)
class Target:
    """What a change touches: asset keys and processings (partitions); ``None`` = cannot be told."""

    asset_keys: tuple[tuple[str, ...], ...] = ()
    processings: tuple[str, ...] | None = ()

    @property
    def calibrations(self) -> tuple[str, ...]:
        return tuple(sorted({c for k in self.asset_keys if (c := calibration_of(k))}))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    pairs: tuple[tuple[str, str], ...] = field(default=())  # (processing, calibration) touched


def _allowed(target: Target) -> Decision:
    processings = target.processings or ()
    pairs = tuple((p, c) for p in processings for c in target.calibrations)
    return Decision(True, "", pairs)


class Authorizer:
    """Applies the rules; ``assigned_expert`` says who owns a calibration in a processing."""

    def __init__(self, assigned_expert: AssignedExpert):
        self.assigned_expert = assigned_expert

    def admin_only(self, user: SessionUser, what: str) -> Decision:
        if user.role >= Role.ADMIN:
            return Decision(True)
        return Decision(False, f"{what} is for admins only; {user.username} is {user.role.label}")

    def manager_action(self, user: SessionUser, what: str, target: Target = Target()) -> Decision:
        if user.role >= Role.MANAGER:
            return _allowed(target)
        return Decision(False, f"{what} is for calibration managers; {user.username} is {user.role.label}")

    def calibration_action(self, user: SessionUser, what: str, target: Target) -> Decision:
        """Launch, re-execute, stop or sign off: managers always, experts for their own calibrations."""
        if user.role >= Role.MANAGER:
            return _allowed(target)
        if user.role < Role.EXPERT:
            return Decision(False, f"viewers cannot {what}; ask a calibration manager")
        if not target.asset_keys:
            return Decision(
                False, f"an expert may {what} only calibration assets, and this names none; ask a manager"
            )
        others = ["/".join(k) for k in target.asset_keys if calibration_of(k) is None]
        if others:
            return Decision(
                False, f"{', '.join(others)} is not a calibration asset; only managers may {what} it"
            )
        if not target.processings:
            return Decision(
                False,
                f"an expert may {what} a calibration only in one named processing (partition); none was given",
            )
        pairs = []
        for processing in target.processings:
            for calibration in target.calibrations:
                expert = self.assigned_expert(processing, calibration)
                if expert != user.username:
                    owner = f"assigned to {expert}" if expert else "assigned to nobody"
                    return Decision(
                        False,
                        f"calibration {calibration} in processing {processing} is {owner}, not to {user.username}; "
                        "ask a calibration manager",
                    )
                pairs.append((processing, calibration))
        return Decision(True, "", tuple(pairs))


def asset_keys_from_paths(paths: Iterable[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(dict.fromkeys(tuple(str(p) for p in path) for path in paths))
