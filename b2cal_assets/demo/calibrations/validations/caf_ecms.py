"""Validation of caf_ecms: collision energy, plotted against the truth."""

from prompt.validation import ValidationSettings

from b2cal_assets.demo.validation_report import validate_payloads

settings = ValidationSettings(
    name="caf_ecms",
    description="Collision energy",
    download_files=["validation/*.png"],
    expert_config={},
)


def run_validation(job_path, input_data_path=None, requested_iov=None, expert_config=None, **kwargs):
    return validate_payloads(job_path, ["CollisionInvariantMass"], calibration=settings.name)
