"""Story: a manager excludes this one; its dependent uses the global tag's Gamma instead."""

import numpy as np
import uproot
from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
from caf.utils import ExpRun
from prompt import CalibrationSettings

settings = CalibrationSettings(
    name="story_gamma",
    expert_username="carol",
    description="Width of x",
    input_data_formats=["raw"],
    input_data_names=["hadron_calib"],
    input_data_filters={"hadron_calib": []},
    depends_on=[],
    expert_config={},
    produced_payloads=["Gamma"],
)


def collect(path, ctx):
    x = uproot.open(path)["events"]["x"].array(library="np")
    return {"sum2": np.array([(x * x).sum()]), "n": np.array([float(len(x))])}


def algorithm(data, ctx):
    return AlgorithmResult(
        AlgorithmStatus.OK, {"Gamma": {"value": np.array([data["sum2"][0] / data["n"][0]])}}
    )


def get_calibrations(input_data, **kwargs):
    files = input_data["hadron_calib"]
    return [
        Calibration(
            name="story_gamma",
            collector=collect,
            algorithm=algorithm,
            input_files={p: ExpRun(iov.exp_low, iov.run_low) for p, iov in files.items()},
            payload_names=("Gamma",),
            max_collector_jobs=1,
        )
    ]
