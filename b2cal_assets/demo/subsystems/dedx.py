"""CDC dE/dx: electron run gain and cos(theta) correction (Bhabha), then the hadron saturation curve."""

from __future__ import annotations

import warnings

import numpy as np

from b2cal_assets.caf.framework import AlgorithmContext, AlgorithmResult, AlgorithmStatus, CollectorContext
from b2cal_assets.demo import detector as det
from b2cal_assets.demo.conditions import constants, scalar
from b2cal_assets.demo.fitting import fit_gaussian_peak, histogram_rows
from b2cal_assets.demo.subsystems._common import config, not_enough, ok, read_cdst

ELECTRON_EDGES = np.linspace(0.5, 2.0, 301)
IONISATION_EDGES = np.geomspace(0.9, 16.0, 25)


def collect_electron(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    events = read_cdst(path, ctx, ["dedx", "dedx_cos"])
    return {
        "dedx": histogram_rows(
            det.cos_bin(events["dedx_cos"]), events["dedx"], det.DEDX_COS_BINS, ELECTRON_EDGES
        )
    }


def electron_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    hist = data["dedx"]
    tracks = hist.sum(axis=1)
    min_tracks = int(config(ctx, "min_tracks_per_bin", 200))
    if tracks.min() < min_tracks:
        return not_enough(
            ctx,
            f"cos(theta) bin {int(tracks.argmin())} has {int(tracks.min())} tracks, fewer than {min_tracks}",
        )
    peaks = np.array([fit_gaussian_peak(row, ELECTRON_EDGES).mean for row in hist])
    gain = float(peaks.mean())
    return ok(
        {"CDCDedxRunGain": {"gain": gain}, "CDCDedxCosineCor": {"correction": peaks / gain}},
        f"run gain {gain:.4f} from {int(tracks.sum())} electrons",
    )


def collect_hadron(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    """dE/dx over the expected ionisation, with the electron gain and cos(theta) correction applied."""
    gain = scalar(constants(ctx.conditions, "CDCDedxRunGain"), "gain")
    cos_cor = np.asarray(constants(ctx.conditions, "CDCDedxCosineCor")["correction"], dtype=float)
    events = read_cdst(path, ctx, ["dedx", "dedx_cos", "dedx_p", "dedx_mass"])
    ionisation = det.dedx_ionisation(events["dedx_p"].astype(float), events["dedx_mass"].astype(float))
    ratio = events["dedx"] / (gain * cos_cor[det.cos_bin(events["dedx_cos"])] * ionisation)
    index = np.digitize(ionisation, IONISATION_EDGES) - 1
    keep = (index >= 0) & (index < len(IONISATION_EDGES) - 1)
    bins = len(IONISATION_EDGES) - 1
    return {
        "count": np.bincount(index[keep], minlength=bins).astype(float),
        "sum_ionisation": np.bincount(index[keep], ionisation[keep], minlength=bins),
        "sum_ratio": np.bincount(index[keep], ratio[keep], minlength=bins),
        "sum_ratio2": np.bincount(index[keep], ratio[keep] ** 2, minlength=bins),
    }


def hadron_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    count = data["count"]
    min_tracks = int(config(ctx, "min_tracks", 1000))
    if count.sum() < min_tracks:
        return not_enough(ctx, f"{int(count.sum())} hadron tracks, fewer than {min_tracks}")
    used = count >= 10
    x = data["sum_ionisation"][used] / count[used]
    y = data["sum_ratio"][used] / count[used]
    spread = np.sqrt(np.maximum(data["sum_ratio2"][used] / count[used] - y**2, 1e-8))
    from scipy.optimize import OptimizeWarning, curve_fit  # at fit time: scripts load for their settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            (alpha, beta), _ = curve_fit(
                lambda i, a, b: det.hadron_saturation(i, a, b),
                x,
                y,
                p0=[0.0, 0.0],
                sigma=spread / np.sqrt(count[used]),
            )
        except RuntimeError as error:
            return AlgorithmResult(AlgorithmStatus.FAILURE, message=f"saturation fit failed: {error}")
    return ok(
        {"CDCDedxHadronSaturation": {"alpha": float(alpha), "beta": float(beta)}},
        f"alpha {alpha:.4f}, beta {beta:.4f} from {int(count.sum())} hadrons",
    )
