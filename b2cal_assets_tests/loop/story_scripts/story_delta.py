"""Story: fails while $B2CAL_HOME/story_delta.fail exists (a broken node, say); a manager restarts it."""

import os
from pathlib import Path

import numpy as np
import uproot
from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
from caf.utils import ExpRun
from prompt import CalibrationSettings
from prompt.calibrations.story_gamma import settings as story_gamma

settings = CalibrationSettings(
    name="story_delta",
    expert_username="dave",
    description="x scaled by Gamma (from the chain: the global tag while story_gamma is excluded)",
    input_data_formats=["raw"],
    input_data_names=["hadron_calib"],
    input_data_filters={"hadron_calib": []},
    depends_on=[story_gamma],
    expert_config={},
    produced_payloads=["Delta"],
)


def collect(path, ctx):
    x = uproot.open(path)["events"]["x"].array(library="np")
    gamma = float(np.asarray(ctx.conditions.get("Gamma")["value"]).ravel()[0])
    return {"sum": np.array([(x * gamma).sum()]), "n": np.array([float(len(x))]), "gamma": np.array([gamma])}


def algorithm(data, ctx):
    if (Path(os.environ.get("B2CAL_HOME", ".")) / "story_delta.fail").exists():
        raise RuntimeError("the node running story_delta's algorithm lost its scratch disk")
    return AlgorithmResult(
        AlgorithmStatus.OK, {"Delta": {"value": np.array([data["sum"][0] / data["n"][0]])}}
    )


def get_calibrations(input_data, **kwargs):
    files = input_data["hadron_calib"]
    return [
        Calibration(
            name="story_delta",
            collector=collect,
            algorithm=algorithm,
            input_files={p: ExpRun(iov.exp_low, iov.run_low) for p, iov in files.items()},
            payload_names=("Delta",),
            max_collector_jobs=1,
        )
    ]
