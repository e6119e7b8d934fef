"""Roles of the served UI and how LDAP groups map onto them.

A person gets the highest role any of their groups maps to; a person in no mapped group gets no role
and cannot log in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum


class Role(IntEnum):
    """Ordered: each role may do everything the roles below it may."""

    VIEWER = 1
    EXPERT = 2
    MANAGER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(r.label for r in cls)
            raise ValueError(f"unknown role {text!r}: use one of {names}") from None


DEFAULT_ROLE_GROUPS: dict[Role, tuple[str, ...]] = {
    Role.ADMIN: ("b2cal-admins",),
    Role.MANAGER: ("b2cal-managers",),
    Role.EXPERT: ("b2cal-experts",),
    Role.VIEWER: ("b2cal-viewers",),
}


def role_for_groups(groups: Iterable[str], role_groups: Mapping[Role, Iterable[str]]) -> Role | None:
    """The highest role one of ``groups`` maps to (group names compare case-insensitively)."""
    have = {g.casefold() for g in groups}
    for role in sorted(role_groups, reverse=True):
        if any(g.casefold() in have for g in role_groups[role]):
            return role
    return None
