"""Story: nobody submits this one; it runs with its defaults at the deadline, then bob uploads a fix."""

import numpy as np
import uproot
from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
from caf.utils import ExpRun
from prompt import CalibrationSettings
from prompt.calibrations.story_alpha import settings as story_alpha

settings = CalibrationSettings(
    name="story_beta",
    expert_username="bob",
    description="Mean of y with Alpha's mean subtracted",
    input_data_formats=["raw"],
    input_data_names=["bhabha_all_calib"],
    input_data_filters={"bhabha_all_calib": []},
    depends_on=[story_alpha],
    expert_config={},
    produced_payloads=["Beta"],
)


def collect(path, ctx):
    y = uproot.open(path)["events"]["y"].array(library="np")
    mean = float(np.asarray(ctx.conditions.get("Alpha")["mean"]).ravel()[0])
    return {"sum": np.array([(y - mean).sum()]), "n": np.array([float(len(y))])}


def algorithm(data, ctx):
    return AlgorithmResult(AlgorithmStatus.OK, {"Beta": {"shift": np.array([data["sum"][0] / data["n"][0]])}})


def get_calibrations(input_data, **kwargs):
    files = input_data["bhabha_all_calib"]
    return [
        Calibration(
            name="story_beta",
            collector=collect,
            algorithm=algorithm,
            input_files={p: ExpRun(iov.exp_low, iov.run_low) for p, iov in files.items()},
            payload_names=("Beta",),
            max_collector_jobs=1,
        )
    ]
