"""What a calibration script's ``get_calibrations`` returns (the framework's ``caf.framework``).

A collector runs over one input file in a subjob and returns summable arrays (histograms, counts,
sums); the runner adds them up per run. The algorithm turns the collected data of a set of runs into
payload constants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from b2cal_assets.domain.iov import ExpRun, IoV

Arrays = dict[str, np.ndarray]


class AlgorithmStatus(StrEnum):
    OK = "ok"
    NOT_ENOUGH_DATA = "not_enough_data"
    ITERATE = "iterate"
    FAILURE = "failure"


class Strategy(StrEnum):
    SINGLE_IOV = "single_iov"  # all runs together, one payload set open-ended from the bucket start
    RUN_BY_RUN = "run_by_run"  # merge runs until there is enough data; leftovers fold into the last set


@dataclass(frozen=True)
class Conditions:
    """Payload constants visible to a job: this calibration's previous iteration, then the database chain."""

    payloads: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)

    def get(self, payload: str) -> Mapping[str, np.ndarray]:
        try:
            return self.payloads[payload]
        except KeyError:
            known = ", ".join(sorted(self.payloads)) or "none"
            raise KeyError(f"no payload {payload!r} in the database chain (known: {known})") from None

    def __contains__(self, payload: object) -> bool:
        return payload in self.payloads


@dataclass(frozen=True)
class CollectorContext:
    iteration: int
    exp_run: ExpRun
    conditions: Conditions
    expert_config: Mapping[str, Any]
    requested_iov: IoV


@dataclass(frozen=True)
class AlgorithmContext:
    iteration: int
    runs: tuple[ExpRun, ...]
    conditions: Conditions
    expert_config: Mapping[str, Any]
    requested_iov: IoV


@dataclass
class AlgorithmResult:
    status: AlgorithmStatus
    payloads: dict[str, dict[str, np.ndarray | float]] = field(default_factory=dict)
    message: str = ""


Collector = Callable[[str, CollectorContext], Arrays]
Algorithm = Callable[[Arrays, AlgorithmContext], AlgorithmResult]


@dataclass
class Calibration:
    """One collector + algorithm over a list of input files.

    ``input_files`` maps a file path to the ``ExpRun`` it belongs to. Set at most one of
    ``max_files_per_collector_job`` and ``max_collector_jobs``.
    """

    name: str
    collector: Collector
    algorithm: Algorithm
    input_files: dict[str, ExpRun]
    payload_names: tuple[str, ...]
    max_iterations: int = 5
    strategy: Strategy = Strategy.SINGLE_IOV
    max_files_per_collector_job: int | None = None
    max_collector_jobs: int | None = None
    backend_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_files_per_collector_job is not None and self.max_collector_jobs is not None:
            raise ValueError(
                f"calibration {self.name}: set max_files_per_collector_job or max_collector_jobs, not both"
            )
        if self.max_iterations < 1:
            raise ValueError(f"calibration {self.name}: max_iterations must be at least 1")
        self.strategy = Strategy(self.strategy)
