"""Validation of caf_cdc_badwires: map of dead and noisy CDC wires, plotted against the truth."""

from prompt.validation import ValidationSettings

from b2cal_assets.demo.validation_report import validate_payloads

settings = ValidationSettings(
    name="caf_cdc_badwires",
    description="Map of dead and noisy CDC wires",
    download_files=["validation/*.png"],
    expert_config={},
)


def run_validation(job_path, input_data_path=None, requested_iov=None, expert_config=None, **kwargs):
    return validate_payloads(
        job_path, ["CDCBadWires"], calibration=settings.name, image_shapes={"CDCBadWires": (56, 64)}
    )
