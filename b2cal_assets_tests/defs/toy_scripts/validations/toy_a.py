"""Validation of toy_a, in the framework's form: run as a program, plots in the working directory."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from prompt.validation import ValidationSettings

from b2cal_assets.caf.payload_io import read_payload

settings = ValidationSettings(name="toy_a", description="ToyA mean", download_files=[], expert_config={})


def run_validation(job_path, input_data_path, requested_iov, expert_config):
    outputdb = Path(job_path) / "outputdb"
    files = sorted(outputdb.glob("dbstore_ToyA_rev_*.root"))
    mean = float(read_payload(files[-1])["mean"].ravel()[0]) if files else float("nan")
    fig, ax = plt.subplots()
    ax.bar(["ToyA.mean"], [mean])
    fig.savefig("toy_a_mean.png")
    plt.close(fig)
    passed = abs(mean - 3.0) < 0.2
    result = {"passed": passed, "summary": f"mean {mean:.3f}", "metrics": {"mean": mean}}
    Path("validation_result.json").write_text(json.dumps(result))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(run_validation(*sys.argv[1:]))
