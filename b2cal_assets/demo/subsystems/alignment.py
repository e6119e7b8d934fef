"""Alignment: VXD and CDC global shifts (a linear chi2 fit of track residuals), then the KLM per sector.

The residuals depend on the time calibrations (an SVD hit time moves its v position, a CDC t0 error
looks like a radial shift), so the collector applies the upstream CDC t0 and SVD time constants.
"""

from __future__ import annotations

import numpy as np

from b2cal_assets.caf.framework import AlgorithmContext, AlgorithmResult, CollectorContext
from b2cal_assets.demo import detector as det
from b2cal_assets.demo.conditions import constants
from b2cal_assets.demo.generator import tracker_shift_at_klm
from b2cal_assets.demo.subsystems._common import config, not_enough, ok, read_raw


def _normal_equations(
    derivatives: np.ndarray, residuals: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Summable ``A^T A`` and ``A^T r`` of a least-squares fit (rows of ``derivatives`` per residual)."""
    weight = 1.0 / sigma**2
    return weight * derivatives.T @ derivatives, weight * derivatives.T @ residuals


def collect_vxdcdc(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    vxd = np.asarray(constants(ctx.conditions, "VXDAlignment")["shift"], dtype=float)
    cdc = np.asarray(constants(ctx.conditions, "CDCAlignment")["shift"], dtype=float)
    svd_offset = np.asarray(constants(ctx.conditions, "SVDTimeCalibration")["offset"], dtype=float)
    t0 = np.asarray(constants(ctx.conditions, "CDCTimeZeros")["t0"], dtype=float)
    events = read_raw(path, ctx, ["trk_phi", "svd_sensor", "vxd_res_u", "vxd_res_v", "cdc_res"])
    sensor = events["svd_sensor"].astype(np.int64)
    sensor_phi = det.svd_sensor_phi(sensor).reshape(-1)
    n_u = sensor_phi.size
    d_u = np.stack([-np.sin(sensor_phi), np.cos(sensor_phi), np.zeros(n_u)], axis=1)
    d_v = np.tile([0.0, 0.0, 1.0], (n_u, 1))
    r_u = events["vxd_res_u"].reshape(-1) - d_u @ vxd
    r_v = (events["vxd_res_v"] - det.SVD_POSITION_PER_NS * svd_offset[sensor]).reshape(-1) - vxd[2]
    vxd_ata, vxd_atr = _normal_equations(
        np.vstack([d_u, d_v]), np.concatenate([r_u, r_v]), det.VXD_RESOLUTION
    )

    phi = events["trk_phi"].astype(float)
    sl_t0 = t0.reshape(det.CDC_SUPERLAYERS, det.CDC_LAYERS_PER_SUPERLAYER).mean(axis=1)
    d_cdc = np.stack([np.cos(phi), np.sin(phi), np.ones_like(phi)], axis=1)
    d_cdc = np.repeat(d_cdc, det.CDC_SUPERLAYERS, axis=0)
    r_cdc = (events["cdc_res"] - det.CDC_DRIFT_VELOCITY * sl_t0).reshape(-1) - d_cdc @ cdc
    cdc_ata, cdc_atr = _normal_equations(d_cdc, r_cdc, det.CDC_SUPERLAYER_RESOLUTION)
    return {
        "vxd_ata": vxd_ata,
        "vxd_atr": vxd_atr,
        "cdc_ata": cdc_ata,
        "cdc_atr": cdc_atr,
        "tracks": np.array([float(len(phi))]),
    }


def vxdcdc_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    tracks = float(data["tracks"][0])
    min_tracks = int(config(ctx, "min_tracks", 500))
    if tracks < min_tracks:
        return not_enough(ctx, f"{int(tracks)} tracks, fewer than {min_tracks}")
    vxd = np.asarray(constants(ctx.conditions, "VXDAlignment")["shift"], dtype=float)
    cdc = np.asarray(constants(ctx.conditions, "CDCAlignment")["shift"], dtype=float)
    vxd_new = vxd + np.linalg.solve(data["vxd_ata"], data["vxd_atr"])
    cdc_new = cdc + np.linalg.solve(data["cdc_ata"], data["cdc_atr"])
    return ok(
        {"VXDAlignment": {"shift": vxd_new}, "CDCAlignment": {"shift": cdc_new}},
        f"{int(tracks)} tracks; VXD shift {np.round(vxd_new, 1).tolist()} um, CDC {np.round(cdc_new, 1).tolist()} um",
    )


def collect_klm(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    """Residuals per KLM sector of tracks extrapolated with the tracker alignment applied."""
    vxd = constants(ctx.conditions, "VXDAlignment")["shift"]
    cdc = constants(ctx.conditions, "CDCAlignment")["shift"]
    klm = constants(ctx.conditions, "KLMAlignment")
    events = read_raw(path, ctx, ["klm_sector", "klm_res_u", "klm_res_z"])
    sector = events["klm_sector"].astype(np.int64)
    track_u, track_z = tracker_shift_at_klm(vxd, cdc, sector)
    res_u = events["klm_res_u"] + track_u - np.asarray(klm["du"])[sector]
    res_z = events["klm_res_z"] + track_z - np.asarray(klm["dz"])[sector]
    flat = sector.reshape(-1)
    return {
        "sum_u": np.bincount(flat, res_u.reshape(-1), minlength=det.KLM_SECTORS),
        "sum_z": np.bincount(flat, res_z.reshape(-1), minlength=det.KLM_SECTORS),
        "hits": np.bincount(flat, minlength=det.KLM_SECTORS).astype(float),
    }


def klm_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    hits = data["hits"]
    min_hits = int(config(ctx, "min_hits_per_sector", 100))
    if hits.min() < min_hits:
        return not_enough(
            ctx, f"sector {int(hits.argmin())} has {int(hits.min())} hits, fewer than {min_hits}"
        )
    klm = constants(ctx.conditions, "KLMAlignment")
    du = np.asarray(klm["du"], dtype=float) + data["sum_u"] / hits
    dz = np.asarray(klm["dz"], dtype=float) + data["sum_z"] / hits
    return ok(
        {"KLMAlignment": {"du": du, "dz": dz}}, f"{det.KLM_SECTORS} sectors from {int(hits.sum())} hits"
    )
