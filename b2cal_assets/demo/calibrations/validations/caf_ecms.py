"""Validation of caf_ecms: collision energy, plotted against the truth."""

import sys

from prompt.validation import ValidationSettings

from b2cal_assets.demo.validation_report import validate_payloads, write_result

settings = ValidationSettings(
    name="caf_ecms",
    description="Collision energy",
    download_files=["outputdb/database.txt"],
    expert_config={},
)


def run_validation(job_path, input_data_path, requested_iov, expert_config):
    """The framework calls run_validation(*sys.argv[1:]) with strings; plots go to ./plots."""
    return validate_payloads(job_path, ["CollisionInvariantMass"], calibration=settings.name)


if __name__ == "__main__":
    sys.exit(write_result(run_validation(*sys.argv[1:])))
