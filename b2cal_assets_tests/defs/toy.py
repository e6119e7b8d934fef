"""A tiny detector for fast tests of the Dagster wiring: one number per event, a known true mean."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import uproot

TRUE_MEAN = 3.0
TRUE_SHIFT = 0.5


@dataclass(frozen=True)
class ToyFile:
    path: str
    data_tag: str
    exp: int
    run: int
    n_events: int
    size_bytes: int
    data_format: str = "raw"
    run_info: dict = field(default_factory=dict)


def generate(
    out_dir: Path, runs: range, tags=("hadron_calib", "bhabha_all_calib"), events: int = 2000
) -> list[ToyFile]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    files = []
    for run in runs:
        for tag in tags:
            path = out_dir / f"{tag}_e1_r{run}.root"
            x = rng.normal(TRUE_MEAN, 1.0, events)
            y = x + rng.normal(TRUE_SHIFT, 0.5, events)
            with uproot.recreate(path) as f:
                f["events"] = {"x": x, "y": y}
            info = {
                "run_type": "physics",
                "magnet": "On",
                "beam_energy": "4S",
                "data_quality": "Good",
                "duration_minutes": 60.0,
            }
            files.append(ToyFile(str(path), tag, 1, run, events, path.stat().st_size, run_info=info))
    return files


def produce_cdst(raw_files, out_dir, conditions, *, exp, run):
    """Applies ToyA's mean (y - mean), so a wrong upstream constant shows in the cDST."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mean = float(np.asarray(conditions.get("ToyA")["mean"]).ravel()[0]) if "ToyA" in conditions else 0.0
    ys = [uproot.open(f)["events"]["y"].array(library="np") for f in raw_files]
    path = out_dir / f"cdst_e{exp}_r{run}.root"
    with uproot.recreate(path) as f:
        f["events"] = {"d": np.concatenate(ys) - mean}
    return path
