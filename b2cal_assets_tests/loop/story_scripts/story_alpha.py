"""Story: the expert (alice) submits this one with changed settings (scale)."""

import numpy as np
import uproot
from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
from caf.utils import ExpRun
from prompt import CalibrationSettings

settings = CalibrationSettings(
    name="story_alpha",
    expert_username="alice",
    description="Mean of x, times the expert's scale",
    input_data_formats=["raw"],
    input_data_names=["hadron_calib"],
    input_data_filters={"hadron_calib": []},
    depends_on=[],
    expert_config={"scale": 1.0},
    produced_payloads=["Alpha"],
)


def collect(path, ctx):
    x = uproot.open(path)["events"]["x"].array(library="np")
    return {"sum": np.array([x.sum()]), "n": np.array([float(len(x))])}


def algorithm(data, ctx):
    mean = float(data["sum"][0] / data["n"][0]) * ctx.expert_config.get("scale", 1.0)
    return AlgorithmResult(AlgorithmStatus.OK, {"Alpha": {"mean": np.array([mean])}})


def get_calibrations(input_data, **kwargs):
    files = input_data["hadron_calib"]
    return [
        Calibration(
            name="story_alpha",
            collector=collect,
            algorithm=algorithm,
            input_files={p: ExpRun(iov.exp_low, iov.run_low) for p, iov in files.items()},
            payload_names=("Alpha",),
            max_collector_jobs=1,
        )
    ]
