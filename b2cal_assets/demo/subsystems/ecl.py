"""ECL: the energy scale of each crystal group from clusters of known energy (beam-energy e and gamma)."""

from __future__ import annotations

import numpy as np

from b2cal_assets.caf.framework import AlgorithmContext, AlgorithmResult, CollectorContext
from b2cal_assets.demo import detector as det
from b2cal_assets.demo.fitting import fit_gaussian_peak, histogram_rows
from b2cal_assets.demo.subsystems._common import config, not_enough, ok, read_cdst

RATIO_EDGES = np.linspace(0.5, 1.5, 201)


def collect_energy(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    events = read_cdst(path, ctx, ["ecl_group", "ecl_energy", "ecl_eref"])
    ratio = events["ecl_energy"] / events["ecl_eref"][:, None]
    return {"ratio": histogram_rows(events["ecl_group"], ratio, det.ECL_GROUPS, RATIO_EDGES)}


def energy_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    hist = data["ratio"]
    clusters = hist.sum(axis=1)
    min_clusters = int(config(ctx, "min_clusters_per_group", 100))
    if clusters.min() < min_clusters:
        return not_enough(
            ctx,
            f"group {int(clusters.argmin())} has {int(clusters.min())} clusters, fewer than {min_clusters}",
        )
    # The radiative tail is on the low side: fit only the core of the peak.
    gain = np.array([fit_gaussian_peak(row, RATIO_EDGES, window=2.0).mean for row in hist])
    return ok(
        {"ECLCrystalEnergy": {"gain": gain}}, f"{det.ECL_GROUPS} groups from {int(clusters.sum())} clusters"
    )
