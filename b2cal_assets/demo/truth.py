"""The synthetic detector's TRUE constants, the NOMINAL ones of the base global tag, and tolerances.

The generator smears events with ``TRUTH``; before any calibration the conditions hold ``NOMINAL``
(design values, deliberately off). A calibration succeeds when ``within_tolerance`` holds for every
payload it produced; ``deviation`` is what ``b2cal demo`` prints.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from b2cal_assets.demo import detector as det

_SEED = 20240611

Constants = dict[str, np.ndarray | float]

# The beams as they really ran (the design energies are in ``detector``).
TRUE_HER_ENERGY = 7.030
TRUE_LER_ENERGY = 3.985


def _truth() -> dict[str, Constants]:
    rng = np.random.default_rng(_SEED)
    t0 = 4.0 + rng.normal(0.0, 2.0, det.CDC_LAYERS)
    status = np.zeros(det.CDC_WIRES, dtype=np.int32)
    bad = rng.choice(det.CDC_WIRES, size=54, replace=False)
    status[bad[:36]] = 1  # dead
    status[bad[36:]] = 2  # noisy
    svd = 2.0 + rng.normal(0.0, 3.0, det.SVD_SENSORS)
    top_module = rng.normal(0.0, 0.4, det.TOP_MODULES)
    top_module -= top_module.mean()
    ecl = rng.normal(1.0, 0.05, det.ECL_GROUPS)
    centres = np.linspace(*det.DEDX_COS_RANGE, det.DEDX_COS_BINS + 1)
    centres = 0.5 * (centres[1:] + centres[:-1])
    cos_cor = 1.0 + 0.08 * centres**2 - 0.05 * centres
    cos_cor /= cos_cor.mean()
    boost, ecms = det.beam_kinematics(TRUE_HER_ENERGY, TRUE_LER_ENERGY)
    return {
        "CDCTimeZeros": {"t0": t0},
        "CDCBadWires": {"status": status},
        "SVDTimeCalibration": {"offset": svd},
        "TOPCalModuleT0": {"t0": top_module},
        "TOPCalCommonT0": {"t0": 0.35},
        "VXDAlignment": {"shift": np.array([45.0, -30.0, 70.0])},
        "CDCAlignment": {"shift": np.array([-60.0, 40.0, 90.0])},
        "KLMAlignment": {
            "du": rng.normal(0.0, 1500.0, det.KLM_SECTORS),
            "dz": rng.normal(0.0, 1500.0, det.KLM_SECTORS),
        },
        "ECLCrystalEnergy": {"gain": ecl},
        "CDCDedxRunGain": {"gain": 1.12},
        "CDCDedxCosineCor": {"correction": cos_cor},
        "CDCDedxHadronSaturation": {"alpha": 0.05, "beta": 0.0},
        "BeamSpot": {"position": np.array([420.0, -310.0, 150.0]), "size": np.array([10.0, 0.3, 250.0])},
        "CollisionBoostVector": {"boost": boost},
        "CollisionInvariantMass": {"mass": ecms},
    }


def _nominal() -> dict[str, Constants]:
    boost, ecms = det.beam_kinematics(det.NOMINAL_HER_ENERGY, det.NOMINAL_LER_ENERGY)
    return {
        "CDCTimeZeros": {"t0": np.zeros(det.CDC_LAYERS)},
        "CDCBadWires": {"status": np.zeros(det.CDC_WIRES, dtype=np.int32)},
        "SVDTimeCalibration": {"offset": np.zeros(det.SVD_SENSORS)},
        "TOPCalModuleT0": {"t0": np.zeros(det.TOP_MODULES)},
        "TOPCalCommonT0": {"t0": 0.0},
        "VXDAlignment": {"shift": np.zeros(3)},
        "CDCAlignment": {"shift": np.zeros(3)},
        "KLMAlignment": {"du": np.zeros(det.KLM_SECTORS), "dz": np.zeros(det.KLM_SECTORS)},
        "ECLCrystalEnergy": {"gain": np.ones(det.ECL_GROUPS)},
        "CDCDedxRunGain": {"gain": 1.0},
        "CDCDedxCosineCor": {"correction": np.ones(det.DEDX_COS_BINS)},
        "CDCDedxHadronSaturation": {"alpha": 0.0, "beta": 0.0},
        "BeamSpot": {"position": np.zeros(3), "size": np.array([10.0, 0.2, 300.0])},
        "CollisionBoostVector": {"boost": boost},
        "CollisionInvariantMass": {"mass": ecms},
    }


TRUTH: dict[str, Constants] = _truth()
NOMINAL: dict[str, Constants] = _nominal()

# Largest allowed |calibrated - true| per key (for CDCBadWires: the number of misclassified wires).
TOLERANCES: dict[str, dict[str, float]] = {
    "CDCTimeZeros": {"t0": 0.3},
    "CDCBadWires": {"misclassified": 2},
    "SVDTimeCalibration": {"offset": 0.8},
    "TOPCalModuleT0": {"t0": 0.05},
    "TOPCalCommonT0": {"t0": 0.04},
    "VXDAlignment": {"shift": 3.0},
    "CDCAlignment": {"shift": 10.0},
    "KLMAlignment": {"du": 400.0, "dz": 400.0},
    "ECLCrystalEnergy": {"gain": 0.015},
    "CDCDedxRunGain": {"gain": 0.01},
    "CDCDedxCosineCor": {"correction": 0.02},
    "CDCDedxHadronSaturation": {"alpha": 0.01, "beta": 0.02},
    "BeamSpot": {"position": 12.0, "size": 10.0},
    "CollisionBoostVector": {"boost": 5e-4},
    "CollisionInvariantMass": {"mass": 1e-3},
}

PAYLOAD_NAMES: tuple[str, ...] = tuple(TRUTH)


def _check_payload(payload_name: str) -> None:
    if payload_name not in TRUTH:
        known = ", ".join(PAYLOAD_NAMES)
        raise KeyError(f"the demo detector has no payload {payload_name!r} (known: {known})")


def deviation(payload_name: str, constants: Mapping[str, object]) -> dict[str, float]:
    """Largest absolute deviation from the truth per key (``misclassified`` wires for CDCBadWires).

    A key the constants lack counts as infinitely far off.
    """
    _check_payload(payload_name)
    truth = TRUTH[payload_name]
    if payload_name == "CDCBadWires":
        if "status" not in constants:
            return {"misclassified": float("inf")}
        got = np.asarray(constants["status"]).astype(np.int64)
        want = np.asarray(truth["status"])
        if got.shape != want.shape:
            return {"misclassified": float("inf")}
        return {"misclassified": float(np.count_nonzero(got != want))}
    result: dict[str, float] = {}
    for key, true_value in truth.items():
        if key not in constants:
            result[key] = float("inf")
            continue
        got = np.asarray(constants[key], dtype=float)
        want = np.asarray(true_value, dtype=float)
        if got.shape != want.shape or not np.all(np.isfinite(got)):
            result[key] = float("inf")
            continue
        result[key] = float(np.max(np.abs(got - want))) if want.size else 0.0
    return result


def within_tolerance(payload_name: str, constants: Mapping[str, object]) -> bool:
    """Whether every key of ``constants`` is within ``TOLERANCES`` of the truth."""
    tolerances = TOLERANCES[payload_name]
    return all(value <= tolerances[key] for key, value in deviation(payload_name, constants).items())


def nominal(payload_name: str) -> Constants:
    """A copy of the base global tag's constants (what a job sees when a payload is absent)."""
    _check_payload(payload_name)
    return {key: np.array(value, copy=True) for key, value in NOMINAL[payload_name].items()}
