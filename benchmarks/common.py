"""What the benchmarks share: a ``--quick`` parser, medians of repeated timings and the RATIO lines.

The machine is shared and noisy, so every benchmark compares against a baseline measured in the same
run and prints one summary line per measurement::

    RATIO signoff_to_dependent_start / stock_dagster_sensor_hop = 1.42 (median of 5)

Scripts import this as ``from common import ...`` (their own folder is first on ``sys.path``) and put
the repository on ``sys.path`` through ``REPO`` so they run without an installed package too.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

T = TypeVar("T")


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the module docstring as help and the ``--quick`` flag every bench has."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a tiny run that only shows the benchmark works")
    return p


def median(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def time_repeated(fn: Callable[[], T], repeats: int) -> tuple[list[float], T]:
    """Wall seconds of ``repeats`` calls of ``fn`` and the last call's result."""
    times: list[float] = []
    result: T | None = None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result  # type: ignore[return-value]


def ratio(numerator: float, denominator: float) -> float:
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return math.nan
    return numerator / denominator


def ratio_line(numerator_name: str, denominator_name: str, value: float, samples: int, note: str = "") -> str:
    """The one summary line a benchmark prints per measurement (what the smoke tests look for)."""
    extra = f"; {note}" if note else ""
    return f"RATIO {numerator_name} / {denominator_name} = {value:.3g} (median of {samples}{extra})"


def print_ratio(
    numerator_name: str, denominator_name: str, value: float, samples: int, note: str = ""
) -> None:
    print(ratio_line(numerator_name, denominator_name, value, samples, note), flush=True)


def describe(name: str, values: Sequence[float], unit: str = "s", scale: float = 1.0) -> str:
    """``name: median 1.23 s (min 1.01, max 1.50, n=5)`` for the detail lines above the RATIO lines."""
    if not values:
        return f"{name}: no samples"
    scaled = [v * scale for v in values]
    return (
        f"{name}: median {median(scaled):.4g} {unit} "
        f"(min {min(scaled):.4g}, max {max(scaled):.4g}, n={len(scaled)})"
    )


def say(message: str) -> None:
    print(message, flush=True)
