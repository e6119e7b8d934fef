"""Validation of caf_cdc_tracking: cDC t0s per wire layer against the truth, plotted against the truth."""

from prompt.validation import ValidationSettings

from b2cal_assets.demo.validation_report import validate_payloads

settings = ValidationSettings(
    name="caf_cdc_tracking",
    description="CDC t0s per wire layer against the truth",
    download_files=["validation/*.png"],
    expert_config={},
)


def run_validation(job_path, input_data_path=None, requested_iov=None, expert_config=None, **kwargs):
    return validate_payloads(job_path, ["CDCTimeZeros"], calibration=settings.name)
