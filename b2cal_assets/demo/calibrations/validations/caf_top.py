"""Validation of caf_top: tOP common t0, plotted against the truth."""

from prompt.validation import ValidationSettings

from b2cal_assets.demo.validation_report import validate_payloads

settings = ValidationSettings(
    name="caf_top",
    description="TOP common t0",
    download_files=["validation/*.png"],
    expert_config={},
)


def run_validation(job_path, input_data_path=None, requested_iov=None, expert_config=None, **kwargs):
    return validate_payloads(job_path, ["TOPCalCommonT0"], calibration=settings.name)
