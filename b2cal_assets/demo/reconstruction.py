"""cDST production: raw skims -> reconstructed tracks with the upstream constants APPLIED.

The cDST holds what the post-tracking and analysis calibrations read. Vertices and the expected TOP
photon times are recomputed with the alignment of the conditions, so a wrong upstream payload biases
every calibration downstream, as in the real detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from b2cal_assets.caf.framework import Conditions
from b2cal_assets.demo import detector as det
from b2cal_assets.demo.conditions import constants
from b2cal_assets.demo.generator import EVENTS_TREE
from b2cal_assets.demo.skim_io import read_label
from b2cal_assets.files import atomic_path

CDST_TREE = "tracks"
CDST_FORMAT = "cdst"
# Raw branches a cDST carries over unchanged.
_COPIED = (
    "mu_p1",
    "mu_p2",
    "gamma_p",
    "top_module",
    "top_time",
    "ecl_group",
    "ecl_energy",
    "ecl_eref",
    "dedx",
    "dedx_cos",
    "dedx_p",
    "dedx_mass",
)
# Payloads cDST production applies.
APPLIED_PAYLOADS = ("VXDAlignment", "CDCAlignment", "CDCTimeZeros", "SVDTimeCalibration")


def cdst_path(out_dir: str | Path, data_tag: str, *, exp: int, run: int) -> Path:
    return Path(out_dir) / f"cdst_e{exp:04d}_r{run:05d}_{data_tag}.root"


def produce_cdst(
    raw_files: Sequence[str], out_dir: str | Path, conditions: Conditions, *, exp: int, run: int
) -> Path:
    """Reconstruct the raw skims of one run and data tag into one cDST file; returns its path."""
    if not raw_files:
        raise ValueError(f"no raw files given for the cDST of exp {exp} run {run}")
    tags = {path: read_label(path, "data_tag") for path in raw_files}
    if len(set(tags.values())) != 1:
        raise ValueError(
            f"a cDST is made from one data tag; got {sorted(set(tags.values()))} in {list(raw_files)}"
        )
    data_tag = next(iter(tags.values()))
    raw = _read_all(raw_files)
    tracks = reconstruct(raw, conditions)
    path = cdst_path(out_dir, data_tag, exp=exp, run=run)
    path.parent.mkdir(parents=True, exist_ok=True)
    import uproot  # when a cDST is written: the code location loads this module for its names only

    with atomic_path(path) as partial, uproot.recreate(partial) as out:
        out[CDST_TREE] = tracks
        out["data_tag"] = data_tag
        out["data_format"] = CDST_FORMAT
    return path


def reconstruct(raw: dict[str, np.ndarray], conditions: Conditions) -> dict[str, np.ndarray]:
    """The cDST branches of a block of raw events, with the alignment of ``conditions`` applied."""
    n = len(next(iter(raw.values()))) if raw else 0
    vxd = np.asarray(constants(conditions, "VXDAlignment")["shift"], dtype=float)
    tracks: dict[str, np.ndarray] = {"event": np.arange(n, dtype=np.int32)}
    for name in _COPIED:
        if name in raw:
            tracks[name] = raw[name]
    if "vertex" in raw:
        tracks["vertex"] = (raw["vertex"] + vxd).astype(np.float32)
    if "top_expected" in raw:
        tracks["top_expected"] = (raw["top_expected"] + det.TOP_TIME_PER_UM_Z * vxd[2]).astype(np.float32)
    if "svd_time" in raw:
        # The event time the reconstruction finds: SVD hit times with the SVD calibration applied.
        offsets = np.asarray(constants(conditions, "SVDTimeCalibration")["offset"], dtype=float)
        tracks["event_t0"] = (raw["svd_time"] - offsets[raw["svd_sensor"]]).mean(axis=1).astype(np.float32)
    return tracks


def _read_all(paths: Sequence[str]) -> dict[str, np.ndarray]:
    import uproot  # when a cDST is read, as above

    parts: list[dict[str, np.ndarray]] = []
    for path in paths:
        with uproot.open(path) as file:
            parts.append(file[EVENTS_TREE].arrays(library="np"))
    names = set(parts[0])
    for path, part in zip(paths, parts, strict=True):
        if set(part) != names:
            raise ValueError(f"{path}: its branches differ from {paths[0]}'s; are they the same data tag?")
    return {name: np.concatenate([part[name] for part in parts]) for name in sorted(names)}
