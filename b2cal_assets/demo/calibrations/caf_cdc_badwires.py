"""CDC bad wires: dead wires (no on-track hits) and noisy ones (mostly off-track hits).

Whether a hit is on track depends on the CDC t0s, so this runs after caf_cdc_tracking and uses its
payload; random triggers add noise-only events.
"""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings
from prompt.calibrations.caf_cdc_tracking import settings as cdc_tracking

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import cdc

F = INPUT_DATA_FILTERS
_PHYSICS = [F["Run Type"]["physics"], F["Magnet"]["On"]]

settings = CalibrationSettings(
    name="caf_cdc_badwires",
    expert_username="cdc_wire_expert",
    subsystem="cdc",
    description="Dead and noisy CDC wires from on-track and off-track hit counts",
    input_data_formats=["raw"],
    input_data_names=["mumu_tight_or_highm_calib", "hadron_calib", "random_calib"],
    input_data_filters={
        "mumu_tight_or_highm_calib": [F["Data Tag"]["mumu_tight_or_highm_calib"], *_PHYSICS],
        "hadron_calib": [F["Data Tag"]["hadron_calib"], *_PHYSICS],
        "random_calib": [F["Data Tag"]["random_calib"]],
    },
    depends_on=[cdc_tracking],
    expert_config={
        "max_files_per_run": 3,
        "max_events_per_file": 50000,
        "min_hits_per_wire": 20,
        "in_time_window_ns": 6.0,
        "dead_fraction": 0.2,
        "noisy_fraction": 0.5,
    },
    produced_payloads=["CDCBadWires"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="cdc_badwires",
            collector=cdc.collect_bad_wires,
            algorithm=cdc.bad_wires_algorithm,
            input_files=files,
            payload_names=("CDCBadWires",),
            max_iterations=1,
            max_collector_jobs=8,
        )
    ]
