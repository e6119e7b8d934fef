import os
import time
from pathlib import Path

import numpy as np
import uproot
from caf.framework import AlgorithmResult, AlgorithmStatus, Calibration
from prompt import CalibrationSettings

settings = CalibrationSettings(
    name="toy_a",
    expert_username="alice",
    description="Mean of x",
    input_data_formats=["raw"],
    input_data_names=["hadron_calib"],
    input_data_filters={"hadron_calib": ["hadron_calib", "Good", "On"]},
    depends_on=[],
    expert_config={"scale": 1.0, "fail": False},
    produced_payloads=["ToyA"],
)


def broken_once(path):
    """A node that fails once for a file (fault tests): ``$B2CAL_HOME/fail_once/<file name>`` is removed
    on the first try, which then fails; the retry succeeds."""
    marker = Path(os.environ.get("B2CAL_HOME", ".")) / "fail_once" / Path(path).name
    try:
        marker.unlink()
    except FileNotFoundError:
        return
    raise RuntimeError(f"transient failure for {Path(path).name} (fails once)")


def collect(path, ctx):
    broken_once(path)
    if ctx.expert_config.get("fail"):
        raise RuntimeError("asked to fail by expert_config")
    time.sleep(float(os.environ.get("B2CAL_TOY_SLEEP_S", "0")))  # a slow node (fault tests kill mid-run)
    # a broken node for one input file, while $B2CAL_HOME/toy_a.fail/<file name> exists (fault tests)
    if (Path(os.environ.get("B2CAL_HOME", ".")) / "toy_a.fail" / Path(path).name).exists():
        raise RuntimeError(f"broken node for {Path(path).name}")
    x = uproot.open(path)["events"]["x"].array(library="np")
    return {"sum": np.array([x.sum()]), "n": np.array([float(len(x))])}


def algorithm(data, ctx):
    mean = float(data["sum"][0] / data["n"][0]) * ctx.expert_config.get("scale", 1.0)
    return AlgorithmResult(AlgorithmStatus.OK, {"ToyA": {"mean": np.array([mean])}})


def get_calibrations(input_data, **kwargs):
    files = {p: (iov.exp_low, iov.run_low) for p, iov in input_data["hadron_calib"].items()}
    from caf.utils import ExpRun

    return [
        Calibration(
            name="toy_a",
            collector=collect,
            algorithm=algorithm,
            input_files={p: ExpRun(*er) for p, er in files.items()},
            payload_names=("ToyA",),
            max_collector_jobs=int(os.environ.get("B2CAL_TOY_A_MAX_JOBS", "2")),  # fault tests: more
        )
    ]
