"""ECL energy scale per crystal group from clusters of known energy (Bhabha electrons, gamma pairs)."""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import ecl

F = INPUT_DATA_FILTERS
_LONG_PHYSICS = [F["Run Type"]["physics"], F["Magnet"]["On"], F["Data Quality Tag"][">=30 Minute Run"]]

settings = CalibrationSettings(
    name="caf_ecl_energy",
    expert_username="ecl_expert",
    subsystem="ecl",
    description="ECL crystal-group energy scale from e+e- -> e+e- and e+e- -> gamma gamma cDSTs",
    input_data_formats=["cdst"],
    input_data_names=["bhabha_all_calib", "gamma_gamma_calib"],
    input_data_filters={
        "bhabha_all_calib": [F["Data Tag"]["bhabha_all_calib"], *_LONG_PHYSICS],
        "gamma_gamma_calib": [F["Data Tag"]["gamma_gamma_calib"], *_LONG_PHYSICS],
    },
    depends_on=[],
    expert_config={
        "max_files_per_run": 2,
        "max_events_per_file": 50000,
        "min_clusters_per_group": 50,
        "backend_args": {"request_memory": "2 GB"},
    },
    produced_payloads=["ECLCrystalEnergy"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="ecl_energy",
            collector=ecl.collect_energy,
            algorithm=ecl.energy_algorithm,
            input_files=files,
            payload_names=("ECLCrystalEnergy",),
            max_iterations=1,
            max_collector_jobs=4,
            backend_args=dict(config.get("backend_args", {})),
        )
    ]
