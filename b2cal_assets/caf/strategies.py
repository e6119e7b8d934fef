"""How an algorithm is run over the collected runs: the framework's ``caf.strategies``.

Scripts assign a strategy class (``cal.strategies = strategies.SequentialBoundaries``); each class
names the way b2cal's runner executes the algorithm (``Strategy``):

- ``SingleIOV``: all runs together, one payload set open-ended from the start of the request.
- ``SequentialRunByRun``: run by run in order; a run with too little data is merged with the next,
  leftovers fold into the last good set.
- ``SimpleRunByRun``: each run on its own; a run with too little data is a failure.
- ``SequentialBoundaries``: the runs between consecutive ``payload_boundaries`` together, one payload
  set per interval (boundaries from the calibration's ``payload_boundaries`` or the expert_config).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

__all__ = [
    "AlgorithmStrategy",
    "SequentialBoundaries",
    "SequentialRunByRun",
    "SimpleRunByRun",
    "SingleIOV",
    "Strategy",
    "as_strategy",
]


class Strategy(StrEnum):
    SINGLE_IOV = "single_iov"
    RUN_BY_RUN = "run_by_run"
    SIMPLE_RUN_BY_RUN = "simple_run_by_run"
    SEQUENTIAL_BOUNDARIES = "sequential_boundaries"


class AlgorithmStrategy:
    """Base of the strategy classes; ``allowed_granularities`` as in the framework."""

    allowed_granularities: ClassVar[list[str]] = ["run", "all"]
    strategy: ClassVar[Strategy] = Strategy.SINGLE_IOV


class SingleIOV(AlgorithmStrategy):
    allowed_granularities: ClassVar[list[str]] = ["run", "all"]
    strategy: ClassVar[Strategy] = Strategy.SINGLE_IOV


class SequentialRunByRun(AlgorithmStrategy):
    allowed_granularities: ClassVar[list[str]] = ["run"]
    strategy: ClassVar[Strategy] = Strategy.RUN_BY_RUN


class SimpleRunByRun(AlgorithmStrategy):
    allowed_granularities: ClassVar[list[str]] = ["run"]
    strategy: ClassVar[Strategy] = Strategy.SIMPLE_RUN_BY_RUN


class SequentialBoundaries(AlgorithmStrategy):
    allowed_granularities: ClassVar[list[str]] = ["run"]
    strategy: ClassVar[Strategy] = Strategy.SEQUENTIAL_BOUNDARIES


def as_strategy(value: object) -> Strategy:
    """A ``Strategy`` from an enum value, its string, or a strategy class (or a list of one of them)."""
    if isinstance(value, list | tuple):
        kinds = {as_strategy(item) for item in value}
        if len(kinds) != 1:
            raise ValueError(f"one strategy for all algorithms of a calibration, got {sorted(kinds)}")
        return kinds.pop()
    if isinstance(value, type) and issubclass(value, AlgorithmStrategy):
        return value.strategy
    if isinstance(value, AlgorithmStrategy):
        return value.strategy
    if isinstance(value, str) and value in {s.value for s in Strategy}:
        return Strategy(value)
    names = "SingleIOV, SequentialRunByRun, SimpleRunByRun, SequentialBoundaries"
    raise ValueError(f"unknown strategy {value!r}; use one of caf.strategies {names}")
