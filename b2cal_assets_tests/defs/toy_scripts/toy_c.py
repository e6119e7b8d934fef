import numpy as np
import uproot
from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
from caf.utils import ExpRun
from prompt import CalibrationSettings
from prompt.calibrations.toy_a import broken_once
from prompt.calibrations.toy_b import settings as toy_b

stage = "post_tracking"

settings = CalibrationSettings(
    name="toy_c",
    expert_username="carol",
    description="Mean of the cDST's d = y - ToyA.mean: recovers the true shift only if toy_a was right",
    input_data_formats=["cdst"],
    input_data_names=["hadron_calib"],
    input_data_filters={"hadron_calib": []},
    depends_on=[toy_b],
    expert_config={},
    produced_payloads=["ToyC"],
)


def collect(path, ctx):
    broken_once(path)  # fault tests: fails once where marked (toy_a)
    d = uproot.open(path)["events"]["d"].array(library="np")
    return {"sum": np.array([d.sum()]), "n": np.array([float(len(d))])}


def algorithm(data, ctx):
    return AlgorithmResult(AlgorithmStatus.OK, {"ToyC": {"shift": np.array([data["sum"][0] / data["n"][0]])}})


def get_calibrations(input_data, **kwargs):
    return [
        Calibration(
            name="toy_c",
            collector=collect,
            algorithm=algorithm,
            input_files={
                p: ExpRun(iov.exp_low, iov.run_low) for p, iov in input_data["hadron_calib"].items()
            },
            payload_names=("ToyC",),
        )
    ]
