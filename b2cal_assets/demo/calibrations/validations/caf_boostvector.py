"""Validation of caf_boostvector: boost vector components, plotted against the truth."""

import sys

from prompt.validation import ValidationSettings

from b2cal_assets.demo.validation_report import validate_payloads, write_result

settings = ValidationSettings(
    name="caf_boostvector",
    description="Boost vector components",
    download_files=["outputdb/database.txt"],
    expert_config={},
)


def run_validation(job_path, input_data_path, requested_iov, expert_config):
    """The framework calls run_validation(*sys.argv[1:]) with strings; plots go to ./plots."""
    return validate_payloads(job_path, ["CollisionBoostVector"], calibration=settings.name)


if __name__ == "__main__":
    sys.exit(write_result(run_validation(*sys.argv[1:])))
