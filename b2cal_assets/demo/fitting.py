"""Fits the demo algorithms share: a Gaussian peak on a histogram, weighted means."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PeakFit:
    mean: float
    sigma: float
    mean_error: float
    entries: float


def _gaussian(x: np.ndarray, norm: float, mean: float, sigma: float) -> np.ndarray:
    return norm * np.exp(-0.5 * ((x - mean) / sigma) ** 2)


def fit_gaussian_peak(counts: np.ndarray, edges: np.ndarray, *, window: float = 2.0) -> PeakFit:
    """Fit a Gaussian to the core of a histogram (within ``window`` sigma of the peak).

    Fitting only the core keeps tails and flat backgrounds from pulling the mean; the fit is
    ``scipy.optimize.curve_fit`` with Poisson errors. Returns NaNs when the histogram is empty.
    """
    counts = np.asarray(counts, dtype=float)
    centres = 0.5 * (edges[1:] + edges[:-1])
    total = counts.sum()
    if total <= 0:
        return PeakFit(float("nan"), float("nan"), float("nan"), 0.0)
    # Start from robust estimates (median, interquartile width): the highest bin of a sparse
    # histogram is a poor guess.
    from scipy.optimize import OptimizeWarning, curve_fit  # at fit time: scripts load for their settings

    cumulative = np.cumsum(counts) / total
    q25, mean0, q75 = np.interp([0.25, 0.5, 0.75], cumulative, centres)
    sigma0 = max((q75 - q25) / 1.349, np.diff(edges).mean())
    mean, sigma = mean0, sigma0
    for _ in range(2):
        core = np.abs(centres - mean) <= window * sigma
        if core.sum() < 3:
            break
        x, y = centres[core], counts[core]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            try:
                popt, pcov = curve_fit(
                    _gaussian, x, y, p0=[y.max(), mean, sigma], sigma=np.sqrt(np.maximum(y, 1.0)), maxfev=2000
                )
            except RuntimeError:
                break
        if not np.all(np.isfinite(pcov)) or popt[2] == 0:
            break
        mean, sigma = float(popt[1]), abs(float(popt[2]))
        error = float(np.sqrt(pcov[1, 1]))
    else:
        return PeakFit(mean, sigma, error, total)
    # The fit did not converge: fall back to the mean of the core.
    core = np.abs(centres - mean0) <= window * sigma0
    weights = counts[core]
    mean = float(np.average(centres[core], weights=weights)) if weights.sum() else mean0
    return PeakFit(mean, sigma0, sigma0 / np.sqrt(max(weights.sum(), 1.0)), total)


def histogram_rows(rows: np.ndarray, values: np.ndarray, n_rows: int, edges: np.ndarray) -> np.ndarray:
    """A 2-D histogram (row index x value bins) as a summable ``(n_rows, n_bins)`` array."""
    rows = np.asarray(rows).reshape(-1)
    values = np.asarray(values, dtype=float).reshape(-1)
    keep = np.isfinite(values) & (rows >= 0)
    counts, _, _ = np.histogram2d(rows[keep], values[keep], bins=[np.arange(n_rows + 1) - 0.5, edges])
    return counts
