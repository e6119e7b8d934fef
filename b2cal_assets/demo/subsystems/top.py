"""TOP: module t0s relative to each other (raw data), then the common t0 (cDSTs, tracks aligned)."""

from __future__ import annotations

import numpy as np

from b2cal_assets.caf.framework import AlgorithmContext, AlgorithmResult, CollectorContext
from b2cal_assets.demo import detector as det
from b2cal_assets.demo.conditions import constants
from b2cal_assets.demo.fitting import fit_gaussian_peak, histogram_rows
from b2cal_assets.demo.subsystems._common import config, not_enough, ok, read_cdst, read_raw

MODULE_EDGES = np.linspace(-3.0, 3.0, 301)
COMMON_EDGES = np.linspace(-2.0, 2.0, 401)


def collect_module_t0(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    events = read_raw(path, ctx, ["top_module", "top_time", "top_expected"])
    residual = events["top_time"] - events["top_expected"][:, None]
    modules = np.broadcast_to(events["top_module"][:, None], residual.shape)
    return {"residual": histogram_rows(modules, residual, det.TOP_MODULES, MODULE_EDGES)}


def module_t0_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    hist = data["residual"]
    photons = hist.sum(axis=1)
    min_photons = int(config(ctx, "min_photons_per_module", 500))
    if photons.min() < min_photons:
        return not_enough(
            ctx,
            f"module {int(photons.argmin()) + 1} has {int(photons.min())} photons, fewer than {min_photons}",
        )
    means = np.array([fit_gaussian_peak(row, MODULE_EDGES).mean for row in hist])
    # Only differences between modules are fixed here; the common offset is caf_top's job.
    return ok(
        {"TOPCalModuleT0": {"t0": means - means.mean()}},
        f"{det.TOP_MODULES} modules, {int(photons.sum())} photons",
    )


def collect_common_t0(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    module_t0 = np.asarray(constants(ctx.conditions, "TOPCalModuleT0")["t0"], dtype=float)
    events = read_cdst(path, ctx, ["top_module", "top_time", "top_expected"])
    residual = events["top_time"] - (events["top_expected"] + module_t0[events["top_module"]])[:, None]
    counts, _ = np.histogram(residual.reshape(-1), bins=COMMON_EDGES)
    return {"residual": counts.astype(float)}


def common_t0_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    hist = data["residual"]
    min_photons = int(config(ctx, "min_photons", 2000))
    if hist.sum() < min_photons:
        return not_enough(ctx, f"{int(hist.sum())} photons, fewer than {min_photons}")
    fit = fit_gaussian_peak(hist, COMMON_EDGES)
    return ok({"TOPCalCommonT0": {"t0": fit.mean}}, f"common t0 {fit.mean:.4f} +- {fit.mean_error:.4f} ns")
