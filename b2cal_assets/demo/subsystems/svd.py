"""SVD: per-sensor hit time offsets, measured against the event time (run by run, merging small runs)."""

from __future__ import annotations

import numpy as np

from b2cal_assets.caf.framework import AlgorithmContext, AlgorithmResult, CollectorContext
from b2cal_assets.demo import detector as det
from b2cal_assets.demo.fitting import fit_gaussian_peak, histogram_rows
from b2cal_assets.demo.subsystems._common import config, not_enough, ok, read_raw

TIME_EDGES = np.linspace(-25.0, 25.0, 101)


def collect_time(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    events = read_raw(path, ctx, ["svd_sensor", "svd_time", "event_t0"])
    relative = events["svd_time"] - events["event_t0"][:, None]
    return {"time": histogram_rows(events["svd_sensor"], relative, det.SVD_SENSORS, TIME_EDGES)}


def time_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    hist = data["time"]
    per_sensor = hist.sum(axis=1)
    min_hits = int(config(ctx, "min_hits_per_sensor", 80))
    if per_sensor.min() < min_hits:
        return not_enough(
            ctx, f"sensor {int(per_sensor.argmin())} has {int(per_sensor.min())} hits, fewer than {min_hits}"
        )
    offsets = np.array([fit_gaussian_peak(row, TIME_EDGES).mean for row in hist])
    return ok(
        {"SVDTimeCalibration": {"offset": offsets}},
        f"{len(offsets)} sensors from {int(per_sensor.sum())} hits",
    )
