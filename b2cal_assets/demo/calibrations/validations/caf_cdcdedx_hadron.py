"""Validation of caf_cdcdedx_hadron: dE/dx hadron saturation parameters, plotted against the truth."""

from prompt.validation import ValidationSettings

from b2cal_assets.demo.validation_report import validate_payloads

settings = ValidationSettings(
    name="caf_cdcdedx_hadron",
    description="dE/dx hadron saturation parameters",
    download_files=["validation/*.png"],
    expert_config={},
)


def run_validation(job_path, input_data_path=None, requested_iov=None, expert_config=None, **kwargs):
    return validate_payloads(job_path, ["CDCDedxHadronSaturation"], calibration=settings.name)
