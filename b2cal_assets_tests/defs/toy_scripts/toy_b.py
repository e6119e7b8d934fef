import numpy as np
import uproot
from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
from caf.utils import ExpRun
from prompt import CalibrationSettings
from prompt.calibrations.toy_a import broken_once
from prompt.calibrations.toy_a import settings as toy_a

settings = CalibrationSettings(
    name="toy_b",
    expert_username="bob",
    description="Shift of y against x, with toy_a's mean applied",
    input_data_formats=["raw"],
    input_data_names=["bhabha_all_calib"],
    input_data_filters={"bhabha_all_calib": ["bhabha_all_calib"]},
    depends_on=[toy_a],
    expert_config={},
    produced_payloads=["ToyB"],
)


def collect(path, ctx):
    broken_once(path)  # fault tests: fails once where marked (toy_a)
    y = uproot.open(path)["events"]["y"].array(library="np")
    mean = float(np.asarray(ctx.conditions.get("ToyA")["mean"]).ravel()[0])
    return {"sum": np.array([(y - mean).sum()]), "n": np.array([float(len(y))])}


def algorithm(data, ctx):
    return AlgorithmResult(AlgorithmStatus.OK, {"ToyB": {"shift": np.array([data["sum"][0] / data["n"][0]])}})


def get_calibrations(input_data, **kwargs):
    return [
        Calibration(
            name="toy_b",
            collector=collect,
            algorithm=algorithm,
            input_files={
                p: ExpRun(iov.exp_low, iov.run_low) for p, iov in input_data["bhabha_all_calib"].items()
            },
            payload_names=("ToyB",),
        )
    ]
