"""Run selection by ``input_data_filters``: the framework's filter names and how a run matches them.

A script lists filter names per input data name (``["hadron_calib", "Good", "NOT Off"]``). Names of
one category are alternatives (any may match), categories must all match, a category left out means
"either", and a leading ``NOT`` negates one name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "INPUT_DATA_FILTERS",
    "FilterTerm",
    "RunInfo",
    "filter_category",
    "parse_filter_name",
    "run_matches",
    "validate_filter_name",
]


def _values(*names: str) -> dict[str, str]:
    return {name: name for name in names}


#: The framework's categories and values (``prompt.INPUT_DATA_FILTERS``), values mapped to themselves
#: so scripts can write ``INPUT_DATA_FILTERS["Magnet"]["On"]``.
INPUT_DATA_FILTERS: dict[str, dict[str, str]] = {
    "Magnet": _values("On", "Off", "Either"),
    "Beam Energy": _values("No Beam", "4S", "Continuum", "", "Scan"),
    "Run Type": _values("beam", "cosmic", "debug", "null", "physics"),
    "Data Tag": _values(
        "hlt_skim",
        "bhabha_all_calib",
        "cosmic_calib",
        "gamma_gamma_calib",
        "hadron_calib",
        "btocharm_calib",
        "mumu_tight_or_highm_calib",
        "offip_calib",
        "radmumu_calib",
        "random_calib",
        "single_gamma_mc",
        "delayedbhabha_calib",
        "bhabha_combined_calib",
    ),
    "Data Quality Tag": _values(
        ">=30 Minute Run",
        "Bad For Alignment",
        "Good",
        "Good Shifter",
        "Good For PXD",
        "Good Or Recoverable",
        "Good Or Recoverable Shifter",
    ),
}

_CATEGORY_OF: dict[str, str] = {
    value: category for category, values in INPUT_DATA_FILTERS.items() for value in values
}

# Data-quality filters that accept more than their own name.
_QUALITY_ACCEPTS: dict[str, frozenset[str]] = {
    "Good Or Recoverable": frozenset({"Good", "Recoverable"}),
    "Good Or Recoverable Shifter": frozenset({"Good Shifter", "Recoverable Shifter"}),
}
_LONG_RUN = ">=30 Minute Run"
_LONG_RUN_MINUTES = 30.0


@dataclass(frozen=True)
class RunInfo:
    """What the run registry says about one run: the fields ``input_data_filters`` select on."""

    exp: int
    run: int
    run_type: str = "physics"
    magnet: str = "On"
    beam_energy: str = "4S"
    data_quality: str = "Good"
    duration_minutes: float | None = None
    data_tag: str = ""


@dataclass(frozen=True)
class FilterTerm:
    """One parsed filter name: its category, its value and whether it is negated."""

    category: str
    value: str
    negated: bool = False


def _strip_not(name: str) -> tuple[str, bool]:
    # The framework removes one leading NOT and the blanks after it ("NOT On" -> "On").
    if name.startswith("NOT"):
        return name[3:].lstrip(), True
    return name, False


def _known_filters_hint(value: str) -> str:
    close = difflib.get_close_matches(value, list(_CATEGORY_OF), n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    listing = "; ".join(
        f"{category}: {', '.join(repr(v) for v in values)}" for category, values in INPUT_DATA_FILTERS.items()
    )
    return f"the known filters are {listing}"


def parse_filter_name(name: str) -> FilterTerm:
    """Parse ``"Good"`` / ``"NOT On"``; raise ``ValueError`` naming an unknown filter."""
    if not isinstance(name, str):
        raise ValueError(f"a filter name is a string, got {type(name).__name__} {name!r}")
    value, negated = _strip_not(name)
    category = _CATEGORY_OF.get(value)
    if category is None:
        raise ValueError(f"unknown filter {name!r}; {_known_filters_hint(value)}")
    return FilterTerm(category, value, negated)


def validate_filter_name(name: str) -> str:
    """Return the filter value (without ``NOT``) or raise ``ValueError`` naming the unknown filter."""
    return parse_filter_name(name).value


def filter_category(name: str) -> str:
    """The ``INPUT_DATA_FILTERS`` category a filter name belongs to."""
    return parse_filter_name(name).category


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _term_matches(term: FilterTerm, run: RunInfo) -> bool:
    value = term.value
    if term.category == "Magnet":
        return value == "Either" or _same(run.magnet, value)
    if term.category == "Beam Energy":
        return _same(run.beam_energy, value)
    if term.category == "Run Type":
        return _same(run.run_type, value)
    if term.category == "Data Tag":
        return _same(run.data_tag, value)
    # Data Quality Tag
    if value == _LONG_RUN:
        return run.duration_minutes is not None and run.duration_minutes >= _LONG_RUN_MINUTES
    accepted = _QUALITY_ACCEPTS.get(value, frozenset({value}))
    return any(_same(run.data_quality, a) for a in accepted)


def _group(term: FilterTerm) -> str:
    # The run-length requirement is not an alternative to a quality flag: it must hold as well.
    return _LONG_RUN if term.value == _LONG_RUN else term.category


def run_matches(filter_names: Iterable[str], run_info: RunInfo) -> bool:
    """Whether a run passes a list of filter names.

    Positive names of one category are alternatives; every category named must match; every ``NOT``
    name must not match. An empty list accepts every run.
    """
    positives: dict[str, list[FilterTerm]] = {}
    for name in filter_names:
        term = parse_filter_name(name)
        if term.negated:
            if _term_matches(term, run_info):
                return False
        else:
            positives.setdefault(_group(term), []).append(term)
    return all(any(_term_matches(t, run_info) for t in terms) for terms in positives.values())
