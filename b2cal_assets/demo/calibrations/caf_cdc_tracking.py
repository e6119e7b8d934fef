"""CDC t0: per-layer time offsets from track residuals, iterated until the correction converges.

The track fit uses the hit it is compared with, so a residual shows only part of a t0 error and the
calibration needs several iterations (the collector applies the previous iteration's t0s).
"""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import cdc

F = INPUT_DATA_FILTERS
_GOOD_PHYSICS = [F["Run Type"]["physics"], F["Magnet"]["On"], F["Data Quality Tag"]["Good Or Recoverable"]]

settings = CalibrationSettings(
    name="caf_cdc_tracking",
    expert_username="cdc_expert",
    subsystem="cdc",
    description="CDC wire-layer t0s from di-muon, hadron and cosmic tracks; iterates until the t0 shift "
    "converges",
    input_data_formats=["raw"],
    input_data_names=["mumu_tight_or_highm_calib", "hadron_calib", "cosmic_calib"],
    input_data_filters={
        "mumu_tight_or_highm_calib": [F["Data Tag"]["mumu_tight_or_highm_calib"], *_GOOD_PHYSICS],
        "hadron_calib": [F["Data Tag"]["hadron_calib"], *_GOOD_PHYSICS],
        "cosmic_calib": [F["Data Tag"]["cosmic_calib"], F["Data Quality Tag"]["Good Or Recoverable"]],
    },
    depends_on=[],
    expert_config={
        "max_files_per_run": 3,
        "max_events_per_file": 50000,
        "min_hits_per_layer": 200,
        "convergence_ns": 0.1,
        "residual_window_ns": 20.0,
        "max_iterations": 8,
    },
    produced_payloads=["CDCTimeZeros"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="cdc_t0",
            collector=cdc.collect_t0,
            algorithm=cdc.t0_algorithm,
            input_files=files,
            payload_names=("CDCTimeZeros",),
            max_iterations=config["max_iterations"],
            max_collector_jobs=4,
        )
    ]
