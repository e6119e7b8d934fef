import os
from pathlib import Path

import numpy as np
import uproot
from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
from caf.utils import ExpRun
from prompt import CalibrationSettings
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


def _broken_once(path):
    """A node that fails once for a file (fault tests): ``$B2CAL_HOME/fail_once/<file name>`` is removed
    on the first try, which then fails; the retry succeeds."""
    marker = Path(os.environ.get("B2CAL_HOME", ".")) / "fail_once" / Path(path).name
    try:
        marker.unlink()
    except FileNotFoundError:
        return
    raise RuntimeError(f"transient failure for {Path(path).name} (fails once)")


def collect(path, ctx):
    _broken_once(path)
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
