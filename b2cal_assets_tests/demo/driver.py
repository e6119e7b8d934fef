"""A small in-process stand-in for the CAF runner: sums collector outputs per run, iterates, merges runs.

It follows the framework's rules (``caf/framework.py``) so the demo calibrations can be tested
without batch jobs: iterate while the algorithm asks and iterations remain; run by run, merge the
next run while there is not enough data and fold leftover runs into the last good set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from b2cal_assets.caf.framework import (
    AlgorithmContext,
    AlgorithmResult,
    AlgorithmStatus,
    Calibration,
    CollectorContext,
    Conditions,
    Strategy,
)
from b2cal_assets.domain.iov import ExpRun, IoV


@dataclass
class PayloadSet:
    runs: tuple[ExpRun, ...]
    iov: IoV
    payloads: dict[str, dict[str, Any]]


@dataclass
class DriverResult:
    iterations: int
    statuses: list[list[AlgorithmStatus]] = field(default_factory=list)
    sets: list[PayloadSet] = field(default_factory=list)

    def payloads(self) -> dict[str, dict[str, Any]]:
        """The payloads of the last set (the one open-ended to the future)."""
        return self.sets[-1].payloads


def _add(total: dict[str, np.ndarray], part: Mapping[str, np.ndarray]) -> None:
    for key, value in part.items():
        value = np.asarray(value, dtype=float)
        total[key] = total[key] + value if key in total else value.copy()


def _merge(per_run: Mapping[ExpRun, dict[str, np.ndarray]], runs: list[ExpRun]) -> dict[str, np.ndarray]:
    total: dict[str, np.ndarray] = {}
    for run in runs:
        _add(total, per_run[run])
    return total


def run_calibration(
    calibration: Calibration,
    *,
    upstream: Mapping[str, Mapping[str, Any]] | None = None,
    expert_config: Mapping[str, Any] | None = None,
    requested_iov: IoV | None = None,
) -> DriverResult:
    upstream = dict(upstream or {})
    expert_config = dict(expert_config or {})
    runs_all = sorted(set(calibration.input_files.values()))
    if not runs_all:
        raise ValueError(f"calibration {calibration.name} has no input files")
    requested_iov = requested_iov or IoV(runs_all[0].exp, runs_all[0].run, -1, -1)
    previous: dict[str, dict[str, Any]] = {}
    result = DriverResult(iterations=0)
    for iteration in range(calibration.max_iterations):
        conditions = Conditions({**upstream, **previous})
        per_run: dict[ExpRun, dict[str, np.ndarray]] = {}
        for path, exp_run in sorted(calibration.input_files.items()):
            ctx = CollectorContext(iteration, exp_run, conditions, expert_config, requested_iov)
            _add(per_run.setdefault(exp_run, {}), calibration.collector(path, ctx))

        def call(runs: list[ExpRun], *, it=iteration, cond=conditions, data=per_run) -> AlgorithmResult:
            ctx = AlgorithmContext(it, tuple(runs), cond, expert_config, requested_iov)
            return calibration.algorithm(_merge(data, runs), ctx)

        sets: list[tuple[list[ExpRun], AlgorithmResult]] = []
        statuses: list[AlgorithmStatus] = []
        if calibration.strategy == Strategy.SINGLE_IOV:
            outcome = call(runs_all)
            statuses.append(outcome.status)
            sets.append((runs_all, outcome))
        else:
            pending: list[ExpRun] = []
            for run in runs_all:
                pending.append(run)
                outcome = call(pending)
                statuses.append(outcome.status)
                if outcome.status != AlgorithmStatus.NOT_ENOUGH_DATA:
                    sets.append((pending, outcome))
                    pending = []
            if pending and sets:  # leftovers fold into the last good set
                runs = sets[-1][0] + pending
                outcome = call(runs)
                statuses.append(outcome.status)
                sets[-1] = (runs, outcome)
        result.iterations = iteration + 1
        result.statuses.append(statuses)
        good = [(runs, o) for runs, o in sets if o.status in (AlgorithmStatus.OK, AlgorithmStatus.ITERATE)]
        if not good:
            raise AssertionError(
                f"{calibration.name}: no payloads; statuses {statuses}; {[o.message for _, o in sets]}"
            )
        result.sets = []
        for index, (runs, outcome) in enumerate(good):
            start = requested_iov.start if index == 0 else runs[0]
            result.sets.append(PayloadSet(tuple(runs), IoV(start.exp, start.run, -1, -1), outcome.payloads))
        if any(o.status == AlgorithmStatus.ITERATE for _, o in good):
            previous = dict(good[-1][1].payloads)
            continue
        break
    return result
