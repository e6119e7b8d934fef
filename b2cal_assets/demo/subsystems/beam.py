"""Beam parameters from di-muon events: beam spot, boost vector, and the collision energy."""

from __future__ import annotations

import numpy as np

from b2cal_assets.caf.framework import AlgorithmContext, AlgorithmResult, CollectorContext
from b2cal_assets.demo import detector as det
from b2cal_assets.demo.conditions import constants
from b2cal_assets.demo.fitting import fit_gaussian_peak
from b2cal_assets.demo.reconstruction import CDST_TREE
from b2cal_assets.demo.skim_io import has_branches
from b2cal_assets.demo.subsystems._common import config, not_enough, ok, read_cdst

ECMS_EDGES = np.linspace(10.3, 10.8, 501)


def collect_beamspot(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    vertex = read_cdst(path, ctx, ["vertex"])["vertex"].astype(float)
    return {"n": np.array([float(len(vertex))]), "sum": vertex.sum(axis=0), "sum_outer": vertex.T @ vertex}


def beamspot_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    n = float(data["n"][0])
    min_events = int(config(ctx, "min_events", 500))
    if n < min_events:
        return not_enough(ctx, f"{int(n)} vertices, fewer than {min_events}")
    mean = data["sum"] / n
    covariance = data["sum_outer"] / n - np.outer(mean, mean)
    # Each vertex is measured with the tracking resolution: remove it to get the beam size.
    size = np.sqrt(np.maximum(np.diag(covariance) - np.square(det.VERTEX_RESOLUTION), 0.0))
    return ok(
        {"BeamSpot": {"position": mean, "size": size}},
        f"{int(n)} vertices; position {np.round(mean, 1).tolist()} um",
    )


def _energy(momentum: np.ndarray, mass: float) -> np.ndarray:
    return np.sqrt((momentum**2).sum(axis=1) + mass**2)


def collect_boost(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    """Velocity of the di-muon system, for events whose vertex is at the beam spot."""
    spot = constants(ctx.conditions, "BeamSpot")
    events = read_cdst(path, ctx, ["mu_p1", "mu_p2", "vertex"])
    width = np.sqrt(np.square(np.asarray(spot["size"], dtype=float)) + np.square(det.VERTEX_RESOLUTION))
    pull = (events["vertex"] - np.asarray(spot["position"], dtype=float)) / width
    near = np.all(np.abs(pull) < float(config(ctx, "vertex_cut_sigma", 5.0)), axis=1)
    p1, p2 = events["mu_p1"][near].astype(float), events["mu_p2"][near].astype(float)
    beta = (p1 + p2) / (_energy(p1, det.MUON_MASS) + _energy(p2, det.MUON_MASS))[:, None]
    return {"n": np.array([float(len(beta))]), "sum": beta.sum(axis=0), "sum2": (beta**2).sum(axis=0)}


def boost_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    n = float(data["n"][0])
    min_events = int(config(ctx, "min_events", 500))
    if n < min_events:
        return not_enough(ctx, f"{int(n)} di-muon events at the beam spot, fewer than {min_events}")
    boost = data["sum"] / n
    return ok(
        {"CollisionBoostVector": {"boost": boost}},
        f"boost {np.round(boost, 5).tolist()} from {int(n)} events",
    )


def collect_ecms(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    """Collision energy estimates in the CMS frame of the boost vector: twice the energy of each barrel
    muon in mu+mu- events, the whole mu+mu-gamma system in radiative ones."""
    boost = np.asarray(constants(ctx.conditions, "CollisionBoostVector")["boost"], dtype=float)
    events = read_cdst(path, ctx, ["mu_p1", "mu_p2"])
    p1, p2 = events["mu_p1"].astype(float), events["mu_p2"].astype(float)
    if has_branches(path, CDST_TREE, ["gamma_p"]):
        photon = read_cdst(path, ctx, ["gamma_p"])["gamma_p"].astype(float)
        energy = _energy(p1, det.MUON_MASS) + _energy(p2, det.MUON_MASS) + np.linalg.norm(photon, axis=1)
        estimates = det.boost_to_cms(energy, p1 + p2 + photon, boost)
    else:
        # Barrel muons only (best momentum resolution): a lab-frame selection, so a wrong boost
        # biases the estimate.
        lo, hi = np.radians(config(ctx, "muon_theta_range_deg", [50.0, 120.0]))
        parts = []
        for p in (p1, p2):
            theta = np.arccos(np.clip(p[:, 2] / np.linalg.norm(p, axis=1), -1.0, 1.0))
            barrel = p[(theta > lo) & (theta < hi)]
            parts.append(2 * det.boost_to_cms(_energy(barrel, det.MUON_MASS), barrel, boost))
        estimates = np.concatenate(parts)
    counts, _ = np.histogram(estimates, bins=ECMS_EDGES)
    return {"ecms": counts.astype(float)}


def ecms_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    hist = data["ecms"]
    min_entries = int(config(ctx, "min_entries", 1000))
    if hist.sum() < min_entries:
        return not_enough(ctx, f"{int(hist.sum())} entries, fewer than {min_entries}")
    fit = fit_gaussian_peak(hist, ECMS_EDGES)
    return ok(
        {"CollisionInvariantMass": {"mass": fit.mean}}, f"eCMS {fit.mean:.5f} +- {fit.mean_error:.5f} GeV"
    )
