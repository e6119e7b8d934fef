"""CDC dE/dx electron calibration: the run gain and the cos(theta) correction from Bhabha electrons."""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import dedx

F = INPUT_DATA_FILTERS

settings = CalibrationSettings(
    name="caf_cdcdedx_electron",
    expert_username="dedx_expert",
    subsystem="cdc",
    description="CDC dE/dx run gain and cos(theta) correction from Bhabha cDSTs",
    input_data_formats=["cdst"],
    input_data_names=["bhabha_all_calib"],
    input_data_filters={
        "bhabha_all_calib": [
            F["Data Tag"]["bhabha_all_calib"],
            F["Run Type"]["physics"],
            F["Magnet"]["On"],
            F["Data Quality Tag"]["Good Or Recoverable"],
        ],
    },
    depends_on=[],
    expert_config={"max_files_per_run": 2, "max_events_per_file": 50000, "min_tracks_per_bin": 200},
    produced_payloads=["CDCDedxRunGain", "CDCDedxCosineCor"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="cdcdedx_electron",
            collector=dedx.collect_electron,
            algorithm=dedx.electron_algorithm,
            input_files=files,
            payload_names=("CDCDedxRunGain", "CDCDedxCosineCor"),
            max_iterations=1,
        )
    ]
