"""Lists of runs and IoVs, as the framework's ``caf.utils`` offers them to calibration scripts.

Scripts split their input by payload boundaries, find runs inside an IoV, or look for runs no payload
covers. The framework passes run lists to its C++ algorithms as ``std::vector<std::pair<int,int>>``;
here such a vector is a list of ``RunPair`` (``.first`` = experiment, ``.second`` = run), which is
what ``runs_from_vector`` reads back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, Protocol, TypeVar

from b2cal_assets.domain.iov import ExpRun, IoV

__all__ = [
    "UNBOUND_EXPRUN",
    "RunPair",
    "find_gaps_in_iov_list",
    "find_run_lists_from_boundaries",
    "grouper",
    "iov_from_runs",
    "iov_from_runvector",
    "pairwise",
    "runs_from_vector",
    "runs_overlapping_iov",
    "split_runs_by_exp",
    "vector_from_runs",
]

T = TypeVar("T")

#: The framework's "no run" marker.
UNBOUND_EXPRUN = ExpRun(-1, -1)


class RunPair(NamedTuple):
    """One entry of a run vector (``std::pair<int,int>`` in the framework)."""

    first: int
    second: int


class _Pair(Protocol):
    @property
    def first(self) -> int: ...

    @property
    def second(self) -> int: ...


def grouper(n: int, iterable: Iterable[T]) -> Iterator[tuple[T, ...]]:
    """Successive tuples of at most ``n`` items."""
    it = iter(iterable)
    while chunk := tuple(itertools.islice(it, n)):
        yield chunk


def pairwise(iterable: Iterable[T]) -> Iterator[tuple[T, T]]:
    """(a, b), (b, c), ... of a sequence; nothing for fewer than two items."""
    return itertools.pairwise(iterable)


def iov_from_runs(runs: Sequence[ExpRun]) -> IoV:
    """The IoV from the first to the last run of an ordered list."""
    if not runs:
        raise ValueError("iov_from_runs needs at least one run")
    low, high = runs[0], runs[-1]
    return IoV(low.exp, low.run, high.exp, high.run)


def vector_from_runs(runs: Iterable[ExpRun]) -> list[RunPair]:
    """Runs in the form the framework hands to an algorithm (a run vector)."""
    return [RunPair(int(run[0]), int(run[1])) for run in runs]


def runs_from_vector(exprun_vector: Iterable[_Pair | tuple[int, int]]) -> list[ExpRun]:
    """A run vector back to ``ExpRun`` in the same order."""
    runs = []
    for item in exprun_vector:
        if isinstance(item, tuple) and not hasattr(item, "first"):
            exp, run = item
        else:
            exp, run = item.first, item.second  # type: ignore[union-attr]
        runs.append(ExpRun(int(exp), int(run)))
    return runs


def iov_from_runvector(exprun_vector: Iterable[_Pair | tuple[int, int]]) -> IoV:
    """The IoV from the first to the last run of a run vector."""
    return iov_from_runs(runs_from_vector(exprun_vector))


def split_runs_by_exp(runs: Sequence[ExpRun]) -> list[list[ExpRun]]:
    """An ordered run list cut into one list per experiment (consecutive runs of one experiment)."""
    return [list(group) for _, group in itertools.groupby(runs, key=lambda run: run.exp)]


def runs_overlapping_iov(iov: IoV, runs: Iterable[ExpRun]) -> set[ExpRun]:
    """The runs that lie inside ``iov``."""
    return {ExpRun(*run) for run in runs if iov.contains_run(run[0], run[1])}


def find_gaps_in_iov_list(iov_list: Sequence[IoV]) -> list[IoV]:
    """Runs not covered between consecutive IoVs of a sorted, non-overlapping list.

    A gap across experiments cannot be known (the last run of an experiment is not recorded) and is
    not reported, as in the framework.
    """
    gaps = []
    for previous, current in itertools.pairwise(iov_list):
        gap = ExpRun(previous.exp_high, previous.run_high).find_gap(ExpRun(current.exp_low, current.run_low))
        if gap is not None:
            gaps.append(gap)
    return gaps


def find_run_lists_from_boundaries(boundaries: Sequence[ExpRun], runs: Iterable[ExpRun]) -> dict[IoV, list[ExpRun]]:
    """The runs of each payload-boundary interval (one experiment); the last interval is open-ended."""
    if not boundaries:
        raise ValueError("find_run_lists_from_boundaries needs at least one boundary")
    available = list(runs)
    intervals: dict[IoV, list[ExpRun]] = {}
    for start, following in itertools.pairwise(boundaries):
        iov = IoV(start[0], start[1], following[0], following[1] - 1)
        intervals[iov] = sorted(runs_overlapping_iov(iov, available))
    last = boundaries[-1]
    iov = IoV(last[0], last[1], last[0], -1)
    intervals[iov] = sorted(run for run in available if run[0] == last[0] and run[1] >= last[1])
    return intervals
