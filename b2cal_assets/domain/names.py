"""Calibration names as Dagster names.

The framework allows any text as a calibration name ("PXD hot/dead pixel calibration"); Dagster asset
key parts and op names must match ``^[A-Za-z0-9_]+$``. ``asset_name`` gives the stable, readable slug
used in keys and op names: every run of other characters becomes one ``_``, leading and trailing ``_``
are dropped. The real name stays the label. Two names with the same slug are a script error
(``slug_collisions``), never a crash. Pure Python: nothing of Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

VALID_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # Dagster's VALID_NAME_REGEX_STR
_INVALID_RUN = re.compile(r"[^A-Za-z0-9_]+")


def asset_name(calibration: str) -> str:
    """The Dagster-safe name of ``calibration``; ValueError when nothing usable is left."""
    slug = _INVALID_RUN.sub("_", calibration).strip("_")
    if not slug:
        raise ValueError(
            f"calibration name {calibration!r} has no letter, digit or underscore to build a Dagster name from"
        )
    return slug


def slug_collisions(names: Iterable[str]) -> dict[str, str]:
    """``{later name: earlier name}`` for every name whose slug an earlier name already took."""
    seen: dict[str, str] = {}
    clashes: dict[str, str] = {}
    for name in names:
        slug = asset_name(name)
        if slug in seen and seen[slug] != name:
            clashes[name] = seen[slug]
        else:
            seen.setdefault(slug, name)
    return clashes


def real_name(name_or_slug: str, known: Iterable[str]) -> str:
    """The real calibration name among ``known`` that ``name_or_slug`` is, or whose Dagster name it is
    (asset keys carry the Dagster name); unchanged when neither."""
    names = list(known)
    if name_or_slug in names:
        return name_or_slug
    return next((name for name in names if asset_name(name) == name_or_slug), name_or_slug)
