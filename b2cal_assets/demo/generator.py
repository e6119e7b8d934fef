"""Writes the synthetic detector's calibration skims: ROOT files (TTree ``events``) per run and data tag.

Every quantity is smeared with the TRUE constants of ``truth.py``, so a calibration that works
recovers them. Runs differ in their run information (a cosmic run with the magnet off, a short run,
a run marked "Bad For Alignment" whose residuals really are off) so that input data filters matter,
and some runs are small so that run merging matters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from b2cal_assets.demo import detector as det
from b2cal_assets.demo.truth import TRUTH
from b2cal_assets.files import atomic_path

DATA_FORMAT = "raw"
EVENTS_TREE = "events"
DEFAULT_EVENTS_PER_RUN = 2000
SMALL_RUN_FRACTION = 0.15
# How far the alignment of a run marked "Bad For Alignment" is really off (um).
BAD_ALIGNMENT_EXTRA_SHIFT = np.array([40.0, 0.0, -40.0])


@dataclass(frozen=True)
class GeneratedFile:
    path: str
    data_tag: str
    data_format: str
    exp: int
    run: int
    n_events: int
    size_bytes: int
    run_info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _TagSpec:
    fraction: float  # events per run relative to ``events_per_run``
    files_per_run: int
    blocks: tuple[str, ...]


TAGS: dict[str, _TagSpec] = {
    "mumu_tight_or_highm_calib": _TagSpec(1.0, 3, ("cdc", "noise", "svd_align", "klm", "top", "dimuon")),
    "hadron_calib": _TagSpec(0.8, 3, ("cdc", "noise", "svd_align", "dedx_hadron")),
    "bhabha_all_calib": _TagSpec(0.6, 2, ("ecl", "dedx_electron")),
    "gamma_gamma_calib": _TagSpec(0.4, 1, ("ecl",)),
    "cosmic_calib": _TagSpec(0.25, 1, ("cdc", "noise", "svd_align")),
    "offip_calib": _TagSpec(0.25, 1, ("svd_align",)),
    "radmumu_calib": _TagSpec(0.3, 1, ("radmumu",)),
    "random_calib": _TagSpec(0.25, 1, ("noise",)),
}
COSMIC_RUN_TAGS = ("cosmic_calib", "random_calib")


def default_run_info(index: int) -> dict[str, Any]:
    """Run information of the ``index``-th generated run (0-based): mostly good physics runs."""
    special: dict[int, dict[str, Any]] = {
        1: {"duration_minutes": 25},
        2: {"run_type": "cosmic", "magnet": "Off", "beam_energy": "No Beam", "duration_minutes": 90},
        3: {"data_quality": "Bad For Alignment"},
        5: {"beam_energy": "Continuum"},
    }
    info = {
        "run_type": "physics",
        "magnet": "On",
        "beam_energy": "4S",
        "data_quality": "Good",
        "duration_minutes": 60 + 10 * (index % 5),
    }
    info.update(special.get(index, {}))
    return info


def generate(
    out_dir: str | Path,
    *,
    exp: int = 1,
    first_run: int = 1,
    runs: int = 6,
    events_per_run: int = DEFAULT_EVENTS_PER_RUN,
    seed: int = 0,
    small_runs: Iterable[int] = (2, 5),
    run_info: Callable[[int], dict[str, Any]] = default_run_info,
    data_tags: Iterable[str] | None = None,
) -> list[GeneratedFile]:
    """Write ``runs`` runs of skims under ``out_dir/e<exp>/r<run>/<tag>.<n>.root``.

    ``small_runs`` are run numbers that get only a small fraction of the events. ``run_info(i)``
    gives the run information of the i-th run (see ``default_run_info``).
    """
    if runs < 1 or events_per_run < 1:
        raise ValueError("generate needs at least one run and one event per run")
    tags = list(TAGS) if data_tags is None else list(data_tags)
    unknown = sorted(set(tags) - set(TAGS))
    if unknown:
        raise ValueError(f"unknown data tags {unknown}; the generator writes {sorted(TAGS)}")
    small = set(small_runs)
    out = Path(out_dir)
    generated: list[GeneratedFile] = []
    for index in range(runs):
        run = first_run + index
        info = dict(run_info(index))
        cosmic_run = info.get("run_type") == "cosmic"
        scale = SMALL_RUN_FRACTION if run in small else 1.0
        for tag in tags:
            spec = TAGS[tag]
            if cosmic_run and tag not in COSMIC_RUN_TAGS:
                continue
            fraction = spec.fraction * (4.0 if cosmic_run else 1.0)
            n_events = max(spec.files_per_run, round(events_per_run * fraction * scale))
            splits = np.array_split(np.arange(n_events), spec.files_per_run)
            for number, part in enumerate(splits):
                rng = np.random.default_rng([seed, exp, run, list(TAGS).index(tag), number])
                path = out / f"e{exp:04d}" / f"r{run:05d}" / f"{tag}.{number}.root"
                branches = _events(spec.blocks, len(part), rng, info)
                _write(path, branches, tag)
                generated.append(
                    GeneratedFile(
                        path=str(path),
                        data_tag=tag,
                        data_format=DATA_FORMAT,
                        exp=exp,
                        run=run,
                        n_events=len(part),
                        size_bytes=path.stat().st_size,
                        run_info=dict(info),
                    )
                )
    return generated


def _write(path: Path, branches: dict[str, np.ndarray], tag: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    import uproot  # when data are written: the code location loads this module for its names only

    with atomic_path(path) as partial, uproot.recreate(partial) as out:
        out[EVENTS_TREE] = branches
        out["data_tag"] = tag
        out["data_format"] = DATA_FORMAT


def _events(
    blocks: Iterable[str], n: int, rng: np.random.Generator, info: dict[str, Any]
) -> dict[str, np.ndarray]:
    branches: dict[str, np.ndarray] = {}
    for block in blocks:
        branches.update(_BLOCKS[block](n, rng, info))
    return branches


# --- blocks: each returns the branches of one detector quantity for n events -----------------------


def _cdc(n: int, rng: np.random.Generator, info: dict[str, Any]) -> dict[str, np.ndarray]:
    t0 = np.asarray(TRUTH["CDCTimeZeros"]["t0"])
    status = np.asarray(TRUTH["CDCBadWires"]["status"])
    wire = rng.integers(0, det.CDC_WIRES_PER_LAYER, (n, det.CDC_LAYERS))
    global_wire = wire + det.CDC_WIRES_PER_LAYER * np.arange(det.CDC_LAYERS)
    drift = rng.uniform(0.0, det.CDC_MAX_DRIFT, (n, det.CDC_LAYERS))
    tdc = drift / det.CDC_DRIFT_VELOCITY + t0 + rng.normal(0.0, det.CDC_TIME_RESOLUTION, drift.shape)
    tdc[status[global_wire] == 1] = np.nan  # dead wires give no hit
    external = drift + rng.normal(0.0, det.CDC_EXTERNAL_TRACK_RESOLUTION, drift.shape)
    return {
        "cdc_wire": global_wire.astype(np.int16),
        "cdc_tdc": tdc.astype(np.float32),
        "cdc_dext": external.astype(np.float32),
    }


def _noise(n: int, rng: np.random.Generator, info: dict[str, Any]) -> dict[str, np.ndarray]:
    status = np.asarray(TRUTH["CDCBadWires"]["status"])
    rate = np.where(status == 2, det.CDC_NOISY_WIRE_RATE, det.CDC_NOISE_RATE)
    rate[status == 1] = 0.0
    counts = np.minimum(rng.poisson(rate.sum(), n), det.CDC_NOISE_SLOTS)
    wires = rng.choice(det.CDC_WIRES, size=(n, det.CDC_NOISE_SLOTS), p=rate / rate.sum())
    empty = np.arange(det.CDC_NOISE_SLOTS) >= counts[:, None]
    wires[empty] = -1
    times = rng.uniform(*det.CDC_NOISE_TIME_RANGE, (n, det.CDC_NOISE_SLOTS))
    return {"cdc_noise_wire": wires.astype(np.int16), "cdc_noise_tdc": times.astype(np.float32)}


def _svd_align(n: int, rng: np.random.Generator, info: dict[str, Any]) -> dict[str, np.ndarray]:
    """SVD hits of a track and its residuals in the VXD and CDC, seen with the NOMINAL geometry."""
    offsets = np.asarray(TRUTH["SVDTimeCalibration"]["offset"])
    vxd = np.asarray(TRUTH["VXDAlignment"]["shift"], dtype=float)
    if info.get("data_quality") == "Bad For Alignment":
        vxd = vxd + BAD_ALIGNMENT_EXTRA_SHIFT
    cdc = np.asarray(TRUTH["CDCAlignment"]["shift"], dtype=float)
    t0 = np.asarray(TRUTH["CDCTimeZeros"]["t0"])
    phi = rng.uniform(0.0, 2 * np.pi, n)
    column = np.floor(phi / (2 * np.pi / det.SVD_SENSORS_PER_LAYER)).astype(int)
    layers = np.arange(det.SVD_LAYERS)
    sensor = layers * det.SVD_SENSORS_PER_LAYER + (column[:, None] + layers) % det.SVD_SENSORS_PER_LAYER
    event_t0 = rng.normal(0.0, 5.0, n)
    time = event_t0[:, None] + offsets[sensor] + rng.normal(0.0, det.SVD_TIME_RESOLUTION, sensor.shape)
    sensor_phi = det.svd_sensor_phi(sensor)
    res_u = -np.sin(sensor_phi) * vxd[0] + np.cos(sensor_phi) * vxd[1]
    res_v = vxd[2] + det.SVD_POSITION_PER_NS * offsets[sensor]
    sl_t0 = t0.reshape(det.CDC_SUPERLAYERS, det.CDC_LAYERS_PER_SUPERLAYER).mean(axis=1)
    res_cdc = (np.cos(phi) * cdc[0] + np.sin(phi) * cdc[1] + cdc[2])[:, None] + det.CDC_DRIFT_VELOCITY * sl_t0
    return {
        "trk_phi": phi.astype(np.float32),
        "event_t0": event_t0.astype(np.float32),
        "svd_sensor": sensor.astype(np.int16),
        "svd_time": time.astype(np.float32),
        "vxd_res_u": (res_u + rng.normal(0.0, det.VXD_RESOLUTION, res_u.shape)).astype(np.float32),
        "vxd_res_v": (res_v + rng.normal(0.0, det.VXD_RESOLUTION, res_v.shape)).astype(np.float32),
        "cdc_res": (res_cdc + rng.normal(0.0, det.CDC_SUPERLAYER_RESOLUTION, res_cdc.shape)).astype(
            np.float32
        ),
    }


def tracker_shift_at_klm(
    vxd: np.ndarray | float, cdc: np.ndarray | float, sector: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """How far a track extrapolated to the KLM moves (u, z) for a tracker shifted by ``vxd``/``cdc``."""
    sector_phi = det.klm_sector_phi(sector)
    xy = 0.5 * (np.asarray(vxd)[:2] + np.asarray(cdc)[:2])
    du = det.KLM_LEVER_ARM * (-np.sin(sector_phi) * xy[0] + np.cos(sector_phi) * xy[1])
    dz = det.KLM_LEVER_ARM * np.asarray(vxd)[2] * np.ones_like(sector_phi)
    return du, dz


def _klm(n: int, rng: np.random.Generator, info: dict[str, Any]) -> dict[str, np.ndarray]:
    klm = TRUTH["KLMAlignment"]
    sector = rng.integers(0, det.KLM_SECTORS, (n, 2))
    track_u, track_z = tracker_shift_at_klm(
        TRUTH["VXDAlignment"]["shift"], TRUTH["CDCAlignment"]["shift"], sector
    )
    res_u = np.asarray(klm["du"])[sector] - track_u + rng.normal(0.0, det.KLM_RESOLUTION, sector.shape)
    res_z = np.asarray(klm["dz"])[sector] - track_z + rng.normal(0.0, det.KLM_RESOLUTION, sector.shape)
    return {
        "klm_sector": sector.astype(np.int16),
        "klm_res_u": res_u.astype(np.float32),
        "klm_res_z": res_z.astype(np.float32),
    }


def _top(n: int, rng: np.random.Generator, info: dict[str, Any]) -> dict[str, np.ndarray]:
    module = rng.integers(0, det.TOP_MODULES, n)
    expected = rng.uniform(5.0, 15.0, n)
    offset = np.asarray(TRUTH["TOPCalModuleT0"]["t0"])[module] + float(TRUTH["TOPCalCommonT0"]["t0"])
    times = (expected + offset)[:, None] + rng.normal(0.0, det.TOP_TIME_RESOLUTION, (n, det.TOP_PHOTONS))
    background = rng.random(times.shape) < det.TOP_BACKGROUND_FRACTION
    times[background] = (expected[:, None] + rng.uniform(-2.0, 2.0, times.shape))[background]
    # The track's expected time is computed with the NOMINAL geometry: a z misalignment shifts it.
    raw_expected = expected - det.TOP_TIME_PER_UM_Z * float(np.asarray(TRUTH["VXDAlignment"]["shift"])[2])
    return {
        "top_module": module.astype(np.int16),
        "top_expected": raw_expected.astype(np.float32),
        "top_time": times.astype(np.float32),
    }


def _ecl(n: int, rng: np.random.Generator, info: dict[str, Any]) -> dict[str, np.ndarray]:
    gain = np.asarray(TRUTH["ECLCrystalEnergy"]["gain"])
    ebeam = float(TRUTH["CollisionInvariantMass"]["mass"]) / 2
    group = rng.integers(0, det.ECL_GROUPS, (n, 2))
    energy = ebeam * gain[group] * (1.0 + rng.normal(0.0, det.ECL_RESOLUTION, group.shape))
    tail = rng.random(group.shape) < det.ECL_TAIL_FRACTION
    energy[tail] *= rng.uniform(0.6, 0.95, group.shape)[tail]
    return {
        "ecl_group": group.astype(np.int16),
        "ecl_energy": energy.astype(np.float32),
        "ecl_eref": np.full(n, ebeam, dtype=np.float32),
    }


def _dedx_electron(n: int, rng: np.random.Generator, info: dict[str, Any]) -> dict[str, np.ndarray]:
    gain = float(TRUTH["CDCDedxRunGain"]["gain"])
    cos_cor = np.asarray(TRUTH["CDCDedxCosineCor"]["correction"])
    cos_theta = rng.uniform(*det.DEDX_COS_RANGE, (n, 2))
    dedx = (
        gain * cos_cor[det.cos_bin(cos_theta)] * (1.0 + rng.normal(0.0, det.DEDX_RESOLUTION, cos_theta.shape))
    )
    return {"dedx_cos": cos_theta.astype(np.float32), "dedx": dedx.astype(np.float32)}


def _dedx_hadron(n: int, rng: np.random.Generator, info: dict[str, Any]) -> dict[str, np.ndarray]:
    gain = float(TRUTH["CDCDedxRunGain"]["gain"])
    cos_cor = np.asarray(TRUTH["CDCDedxCosineCor"]["correction"])
    saturation = TRUTH["CDCDedxHadronSaturation"]
    mass = rng.choice(np.asarray(det.HADRON_MASSES), size=n, p=[0.6, 0.2, 0.2])
    momentum = rng.uniform(0.25, 2.0, n)
    cos_theta = rng.uniform(*det.DEDX_COS_RANGE, n)
    ionisation = det.dedx_ionisation(momentum, mass)
    response = det.hadron_saturation(ionisation, float(saturation["alpha"]), float(saturation["beta"]))
    dedx = gain * cos_cor[det.cos_bin(cos_theta)] * ionisation * response
    dedx *= 1.0 + rng.normal(0.0, det.DEDX_RESOLUTION, n)
    return {
        "dedx_p": momentum.astype(np.float32),
        "dedx_mass": mass.astype(np.float32),
        "dedx_cos": cos_theta.astype(np.float32),
        "dedx": dedx.astype(np.float32),
    }


def _boost(energy: np.ndarray, momentum: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lorentz-boost four-vectors (rows) into the frame where their rest system moves with ``beta``.

    ``beta`` is one vector for all rows or one per row.
    """
    beta = np.broadcast_to(np.asarray(beta, dtype=float), momentum.shape)
    b2 = np.einsum("ij,ij->i", beta, beta)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = np.einsum("ij,ij->i", momentum, beta)
    new_energy = gamma * (energy + bp)
    factor = (gamma - 1.0) * bp / b2 + gamma * energy
    return new_energy, momentum + factor[:, None] * beta


def _isotropic(n: int, rng: np.random.Generator, weighted: bool) -> np.ndarray:
    """Unit vectors; ``weighted`` follows the e+e- -> mu+mu- angular distribution 1 + cos^2."""
    if weighted:
        cos_theta = rng.uniform(-1.0, 1.0, 3 * n)
        keep = rng.uniform(0.0, 2.0, 3 * n) < 1.0 + cos_theta**2
        cos_theta = cos_theta[keep][:n]
    else:
        cos_theta = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    return np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta], axis=1)


def _accepted(momentum: np.ndarray) -> np.ndarray:
    theta = np.arccos(np.clip(momentum[:, 2] / np.linalg.norm(momentum, axis=1), -1.0, 1.0))
    lo, hi = det.LAB_THETA_ACCEPTANCE
    return (theta > lo) & (theta < hi)


def _smear(momentum: np.ndarray, rng: np.random.Generator, resolution: float) -> np.ndarray:
    return momentum * (1.0 + rng.normal(0.0, resolution, (len(momentum), 1)))


def _dimuon(n: int, rng: np.random.Generator, info: dict[str, Any]) -> dict[str, np.ndarray]:
    boost = np.asarray(TRUTH["CollisionBoostVector"]["boost"])
    ecms = float(TRUTH["CollisionInvariantMass"]["mass"])
    p1_all: list[np.ndarray] = []
    p2_all: list[np.ndarray] = []
    have = 0
    while have < n:
        m = 2 * (n - have) + 16
        sqrt_s = rng.normal(ecms, 0.005, m)
        p_star = np.sqrt((sqrt_s / 2) ** 2 - det.MUON_MASS**2)
        direction = _isotropic(m, rng, weighted=True)
        e_star = sqrt_s / 2
        _, p1 = _boost(e_star, direction * p_star[:, None], boost)
        _, p2 = _boost(e_star, -direction * p_star[:, None], boost)
        keep = _accepted(p1) & _accepted(p2)
        p1_all.append(p1[keep])
        p2_all.append(p2[keep])
        have += int(keep.sum())
    p1 = _smear(np.concatenate(p1_all)[:n], rng, det.MUON_MOMENTUM_RESOLUTION)
    p2 = _smear(np.concatenate(p2_all)[:n], rng, det.MUON_MOMENTUM_RESOLUTION)
    spot = TRUTH["BeamSpot"]
    vertex = rng.normal(np.asarray(spot["position"]), np.asarray(spot["size"]), (n, 3))
    vertex += rng.normal(0.0, det.VERTEX_RESOLUTION, (n, 3))
    vertex -= np.asarray(TRUTH["VXDAlignment"]["shift"])  # tracks fitted in the NOMINAL geometry
    return {
        "mu_p1": p1.astype(np.float32),
        "mu_p2": p2.astype(np.float32),
        "vertex": vertex.astype(np.float32),
    }


def _radmumu(n: int, rng: np.random.Generator, info: dict[str, Any]) -> dict[str, np.ndarray]:
    """mu+ mu- gamma: a hard photon in the CMS, the pair decaying in its own rest frame."""
    boost = np.asarray(TRUTH["CollisionBoostVector"]["boost"])
    ecms = float(TRUTH["CollisionInvariantMass"]["mass"])
    sqrt_s = rng.normal(ecms, 0.005, n)
    k = rng.uniform(0.5, 3.0, n)
    k_dir = _isotropic(n, rng, weighted=False)
    photon = k_dir * k[:, None]
    pair_mass = np.sqrt(sqrt_s**2 - 2 * sqrt_s * k)
    pair_p = -photon
    pair_e = sqrt_s - k
    p_rest = np.sqrt((pair_mass / 2) ** 2 - det.MUON_MASS**2)
    mu_dir = _isotropic(n, rng, weighted=False)
    e_rest = pair_mass / 2
    beta_pair = pair_p / pair_e[:, None]  # each pair has its own velocity in the CMS
    mu = []
    for sign in (1.0, -1.0):
        e_mu, p_mu = _boost(e_rest, sign * mu_dir * p_rest[:, None], beta_pair)
        _, p_lab = _boost(e_mu, p_mu, boost)
        mu.append(p_lab)
    _, photon_lab = _boost(k, photon, boost)
    return {
        "mu_p1": _smear(mu[0], rng, det.MUON_MOMENTUM_RESOLUTION).astype(np.float32),
        "mu_p2": _smear(mu[1], rng, det.MUON_MOMENTUM_RESOLUTION).astype(np.float32),
        "gamma_p": _smear(photon_lab, rng, 0.01).astype(np.float32),
    }


_BLOCKS: dict[str, Callable[[int, np.random.Generator, dict[str, Any]], dict[str, np.ndarray]]] = {
    "cdc": _cdc,
    "noise": _noise,
    "svd_align": _svd_align,
    "klm": _klm,
    "top": _top,
    "ecl": _ecl,
    "dedx_electron": _dedx_electron,
    "dedx_hadron": _dedx_hadron,
    "dimuon": _dimuon,
    "radmumu": _radmumu,
}

__all__ = ["DATA_FORMAT", "EVENTS_TREE", "TAGS", "GeneratedFile", "default_run_info", "generate"]
