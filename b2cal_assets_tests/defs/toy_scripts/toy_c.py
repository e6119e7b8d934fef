import os
from pathlib import Path

import numpy as np
import uproot
from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
from caf.utils import ExpRun
from prompt import CalibrationSettings
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
