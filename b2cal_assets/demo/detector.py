"""Geometry and response of the synthetic detector: what is fixed by construction, not calibrated.

The generator, the cDST production and the collectors all use these numbers, so they live in one
place. Units: times in ns, positions in micrometres, energies and momenta in GeV.
"""

from __future__ import annotations

import numpy as np

# CDC: wire layers, wires per layer, superlayers (groups of 7 layers) used by the alignment.
CDC_LAYERS = 56
CDC_WIRES_PER_LAYER = 64
CDC_WIRES = CDC_LAYERS * CDC_WIRES_PER_LAYER
CDC_SUPERLAYERS = 8
CDC_LAYERS_PER_SUPERLAYER = CDC_LAYERS // CDC_SUPERLAYERS
CDC_DRIFT_VELOCITY = 40.0  # um / ns
CDC_TIME_RESOLUTION = 2.0  # ns
CDC_MAX_DRIFT = 8000.0  # um
# The track fit uses the hit it is compared with: a biased residual shows only (1 - weight) of a
# t0 error, so the t0 calibration converges geometrically over iterations.
CDC_TRACK_FIT_WEIGHT = 0.4
CDC_EXTERNAL_TRACK_RESOLUTION = 40.0  # um
CDC_NOISE_SLOTS = 4  # noise hits stored per event (-1 = empty)
CDC_NOISE_TIME_RANGE = (-100.0, 500.0)  # ns
CDC_NOISE_RATE = 1e-4  # per wire per event
CDC_NOISY_WIRE_RATE = 0.03  # per wire per event for a noisy wire

# SVD: 4 layers of 12 sensors; a hit time shifts the reconstructed v position (time-dependent
# cluster position correction), which couples the SVD time calibration to the alignment.
SVD_LAYERS = 4
SVD_SENSORS_PER_LAYER = 12
SVD_SENSORS = SVD_LAYERS * SVD_SENSORS_PER_LAYER
SVD_TIME_RESOLUTION = 2.0  # ns
SVD_POSITION_PER_NS = 5.0  # um / ns

# Tracking residuals.
VXD_RESOLUTION = 10.0  # um per hit
CDC_SUPERLAYER_RESOLUTION = 30.0  # um per superlayer residual

# KLM: 8 barrel sectors; the track is extrapolated a long way, so a tracker misalignment is amplified.
KLM_SECTORS = 8
KLM_RESOLUTION = 2000.0  # um
KLM_LEVER_ARM = 10.0

# TOP: 16 modules, photons per track; the expected arrival time depends on the track's z.
TOP_MODULES = 16
TOP_PHOTONS = 8
TOP_TIME_RESOLUTION = 0.15  # ns
TOP_BACKGROUND_FRACTION = 0.1
TOP_TIME_PER_UM_Z = 0.002  # ns / um

# ECL: crystal groups; cluster energy resolution and a low-energy radiative tail.
ECL_GROUPS = 72
ECL_RESOLUTION = 0.02
ECL_TAIL_FRACTION = 0.1

# CDC dE/dx: cos(theta) bins of the electron correction; resolution.
DEDX_COS_BINS = 10
DEDX_COS_RANGE = (-0.8, 0.9)
DEDX_RESOLUTION = 0.07
HADRON_MASSES = (0.13957, 0.49368, 0.93827)  # pion, kaon, proton

# Beams and IP.
BEAM_CROSSING_ANGLE = 0.083  # rad, full angle
NOMINAL_HER_ENERGY = 7.0
NOMINAL_LER_ENERGY = 4.0
VERTEX_RESOLUTION = (15.0, 15.0, 25.0)  # um
MUON_MOMENTUM_RESOLUTION = 0.003  # relative
MUON_MASS = 0.10566
LAB_THETA_ACCEPTANCE = (np.radians(17.0), np.radians(150.0))


def beam_kinematics(her_energy: float, ler_energy: float) -> tuple[np.ndarray, float]:
    """Boost vector and centre-of-mass energy of the two beams (the crossing angle in the x-z plane)."""
    half = BEAM_CROSSING_ANGLE / 2
    p_her = her_energy * np.array([np.sin(half), 0.0, np.cos(half)])
    p_ler = ler_energy * np.array([np.sin(half), 0.0, -np.cos(half)])
    total_p = p_her + p_ler
    total_e = her_energy + ler_energy
    boost = total_p / total_e
    ecms = float(np.sqrt(total_e**2 - total_p @ total_p))
    return boost, ecms


def boost_to_cms(energy: np.ndarray, momentum: np.ndarray, boost: np.ndarray) -> np.ndarray:
    """Energy in the frame moving with ``boost`` (vectorised over rows of ``momentum``)."""
    beta = np.asarray(boost, dtype=float)
    gamma = 1.0 / np.sqrt(1.0 - beta @ beta)
    return gamma * (energy - momentum @ beta)


def dedx_ionisation(momentum: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Mean ionisation (minimum-ionising ~ 1) of a particle: a Bethe-Bloch-like 1/beta^2 curve."""
    bg = momentum / mass
    beta2 = bg**2 / (1.0 + bg**2)
    return (1.0 / beta2) * (1.0 + 0.1 * np.log1p(bg**2)) / 1.25


def hadron_saturation(ionisation: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Measured / true dE/dx of a hadron: high ionisation saturates the CDC cells."""
    return (1.0 + beta) / (1.0 + alpha * (ionisation - 1.0))


def cos_bin(cos_theta: np.ndarray) -> np.ndarray:
    lo, hi = DEDX_COS_RANGE
    edges = np.linspace(lo, hi, DEDX_COS_BINS + 1)
    return np.clip(np.digitize(cos_theta, edges) - 1, 0, DEDX_COS_BINS - 1)


def svd_sensor_phi(sensor: np.ndarray) -> np.ndarray:
    return (np.asarray(sensor) % SVD_SENSORS_PER_LAYER) * (2 * np.pi / SVD_SENSORS_PER_LAYER)


def klm_sector_phi(sector: np.ndarray) -> np.ndarray:
    return np.asarray(sector) * (2 * np.pi / KLM_SECTORS)
