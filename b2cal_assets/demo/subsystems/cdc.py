"""CDC: per-layer t0 (iterated: the track fit uses the hit it is compared with) and bad wires."""

from __future__ import annotations

import numpy as np

from b2cal_assets.caf.framework import AlgorithmContext, AlgorithmResult, AlgorithmStatus, CollectorContext
from b2cal_assets.demo import detector as det
from b2cal_assets.demo.conditions import constants
from b2cal_assets.demo.generator import EVENTS_TREE
from b2cal_assets.demo.skim_io import has_branches
from b2cal_assets.demo.subsystems._common import config, not_enough, ok, read_raw

_LAYER = np.arange(det.CDC_LAYERS)


def collect_t0(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    """Sums of the biased time residual per layer, with the t0s of the previous iteration applied."""
    t0 = np.asarray(constants(ctx.conditions, "CDCTimeZeros")["t0"], dtype=float)
    events = read_raw(path, ctx, ["cdc_tdc", "cdc_dext"])
    measured = det.CDC_DRIFT_VELOCITY * (events["cdc_tdc"] - t0)
    # The fitted track follows this hit with weight w: only (1 - w) of a t0 error shows.
    fitted = det.CDC_TRACK_FIT_WEIGHT * measured + (1 - det.CDC_TRACK_FIT_WEIGHT) * events["cdc_dext"]
    residual = (measured - fitted) / det.CDC_DRIFT_VELOCITY
    window = float(config(ctx, "residual_window_ns", 20.0))
    good = np.isfinite(residual) & (np.abs(residual) < window)
    residual = np.where(good, residual, 0.0)
    return {
        "residual_sum": residual.sum(axis=0),
        "residual_sum2": (residual**2).sum(axis=0),
        "hits": good.sum(axis=0).astype(float),
    }


def t0_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    hits = data["hits"]
    min_hits = int(config(ctx, "min_hits_per_layer", 200))
    if hits.min() < min_hits:
        return not_enough(
            ctx, f"layer {int(hits.argmin())} has {int(hits.min())} hits, fewer than {min_hits}"
        )
    t0 = np.asarray(constants(ctx.conditions, "CDCTimeZeros")["t0"], dtype=float)
    shift = data["residual_sum"] / hits
    payloads = {"CDCTimeZeros": {"t0": t0 + shift}}
    largest = float(np.max(np.abs(shift)))
    convergence = float(config(ctx, "convergence_ns", 0.1))
    message = (
        f"iteration {ctx.iteration}: largest t0 shift {largest:.3f} ns (converged below {convergence} ns)"
    )
    if largest > convergence:
        return AlgorithmResult(AlgorithmStatus.ITERATE, payloads=payloads, message=message)
    return ok(payloads, message)


def collect_bad_wires(path: str, ctx: CollectorContext) -> dict[str, np.ndarray]:
    """On-track and off-track hits per wire; a hit is on track when it is in time with the track
    after the CDC t0s are applied, so wrong t0s make whole layers look noisy."""
    on_track = np.zeros(det.CDC_WIRES)
    off_track = np.zeros(det.CDC_WIRES)
    tracks = np.zeros(det.CDC_LAYERS)
    if has_branches(path, EVENTS_TREE, ["cdc_tdc"]):
        t0 = np.asarray(constants(ctx.conditions, "CDCTimeZeros")["t0"], dtype=float)
        events = read_raw(path, ctx, ["cdc_wire", "cdc_tdc", "cdc_dext"])
        delay = events["cdc_tdc"] - t0 - events["cdc_dext"] / det.CDC_DRIFT_VELOCITY
        window = float(config(ctx, "in_time_window_ns", 6.0))
        hit = np.isfinite(delay)
        in_time = hit & (np.abs(np.where(hit, delay, 0.0)) < window)
        wires = events["cdc_wire"].astype(np.int64)
        on_track += np.bincount(wires[in_time], minlength=det.CDC_WIRES)
        off_track += np.bincount(wires[hit & ~in_time], minlength=det.CDC_WIRES)
        tracks += len(wires)
    noise = read_raw(path, ctx, ["cdc_noise_wire"])["cdc_noise_wire"].astype(np.int64)
    off_track += np.bincount(noise[noise >= 0], minlength=det.CDC_WIRES)
    return {"on_track": on_track, "off_track": off_track, "tracks": tracks}


def bad_wires_algorithm(data: dict[str, np.ndarray], ctx: AlgorithmContext) -> AlgorithmResult:
    expected = np.repeat(data["tracks"] / det.CDC_WIRES_PER_LAYER, det.CDC_WIRES_PER_LAYER)
    min_expected = float(config(ctx, "min_hits_per_wire", 20))
    if expected.min() < min_expected:
        return not_enough(ctx, f"{expected.min():.1f} expected hits per wire, fewer than {min_expected}")
    on_track, off_track = data["on_track"], data["off_track"]
    total = on_track + off_track
    dead = on_track < float(config(ctx, "dead_fraction", 0.2)) * expected
    noisy_fraction = float(config(ctx, "noisy_fraction", 0.5))
    noisy = ~dead & (off_track > noisy_fraction * np.maximum(total, 1.0)) & (off_track >= 5)
    status = np.zeros(det.CDC_WIRES, dtype=np.int32)
    status[dead] = 1
    status[noisy] = 2
    return ok(
        {"CDCBadWires": {"status": status}},
        f"{int(dead.sum())} dead and {int(noisy.sum())} noisy wires of {det.CDC_WIRES}",
    )
