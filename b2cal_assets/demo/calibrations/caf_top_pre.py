"""TOP module t0s relative to each other, from raw di-muon data (the common offset comes later)."""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import top

F = INPUT_DATA_FILTERS

settings = CalibrationSettings(
    name="caf_top_pre",
    expert_username="top_expert",
    subsystem="top",
    description="TOP module t0s (relative) from photon arrival times of di-muon tracks",
    input_data_formats=["raw"],
    input_data_names=["mumu_tight_or_highm_calib"],
    input_data_filters={
        "mumu_tight_or_highm_calib": [
            F["Data Tag"]["mumu_tight_or_highm_calib"],
            F["Run Type"]["physics"],
            F["Magnet"]["On"],
        ],
    },
    depends_on=[],
    expert_config={"max_files_per_run": 3, "max_events_per_file": 50000, "min_photons_per_module": 500},
    produced_payloads=["TOPCalModuleT0"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="top_module_t0",
            collector=top.collect_module_t0,
            algorithm=top.module_t0_algorithm,
            input_files=files,
            payload_names=("TOPCalModuleT0",),
            max_iterations=1,
            max_collector_jobs=4,
        )
    ]
