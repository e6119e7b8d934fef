"""SVD hit time: per-sensor offsets against the event time, run by run.

A run with too few hits on some sensor is merged with the next one (the framework's
SequentialRunByRun strategy); leftover runs at the end fold into the last payload.
"""

from caf.framework import Calibration, Strategy
from prompt import INPUT_DATA_FILTERS, CalibrationSettings

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import svd

F = INPUT_DATA_FILTERS
_PHYSICS = [F["Run Type"]["physics"], F["Magnet"]["On"]]

settings = CalibrationSettings(
    name="caf_svd_time",
    expert_username="svd_expert",
    subsystem="svd",
    description="SVD sensor time offsets, run by run, merging runs with too few hits",
    input_data_formats=["raw"],
    input_data_names=["mumu_tight_or_highm_calib", "hadron_calib"],
    input_data_filters={
        "mumu_tight_or_highm_calib": [F["Data Tag"]["mumu_tight_or_highm_calib"], *_PHYSICS],
        "hadron_calib": [F["Data Tag"]["hadron_calib"], *_PHYSICS],
    },
    depends_on=[],
    expert_config={"max_files_per_run": 3, "max_events_per_file": 50000, "min_hits_per_sensor": 80},
    produced_payloads=["SVDTimeCalibration"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="svd_time",
            collector=svd.collect_time,
            algorithm=svd.time_algorithm,
            input_files=files,
            payload_names=("SVDTimeCalibration",),
            max_iterations=1,
            strategy=Strategy.RUN_BY_RUN,
            max_files_per_collector_job=3,
        )
    ]
