"""Validation of caf_top_pre: tOP module t0s, plotted against the truth."""

from prompt.validation import ValidationSettings

from b2cal_assets.demo.validation_report import validate_payloads

settings = ValidationSettings(
    name="caf_top_pre",
    description="TOP module t0s",
    download_files=["validation/*.png"],
    expert_config={},
)


def run_validation(job_path, input_data_path=None, requested_iov=None, expert_config=None, **kwargs):
    return validate_payloads(job_path, ["TOPCalModuleT0"], calibration=settings.name)
