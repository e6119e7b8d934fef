"""CDC dE/dx hadron saturation, measured after the electron gain and cos(theta) correction."""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings
from prompt.calibrations.caf_cdcdedx_electron import settings as cdcdedx_electron

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import dedx

F = INPUT_DATA_FILTERS

settings = CalibrationSettings(
    name="caf_cdcdedx_hadron",
    expert_username="dedx_expert",
    subsystem="cdc",
    description="CDC dE/dx hadron saturation curve from identified pions, kaons and protons",
    input_data_formats=["cdst"],
    input_data_names=["hadron_calib"],
    input_data_filters={
        "hadron_calib": [
            F["Data Tag"]["hadron_calib"],
            F["Run Type"]["physics"],
            F["Magnet"]["On"],
            F["Data Quality Tag"]["Good Or Recoverable"],
        ],
    },
    depends_on=[cdcdedx_electron],
    expert_config={"max_files_per_run": 3, "max_events_per_file": 50000, "min_tracks": 1000},
    produced_payloads=["CDCDedxHadronSaturation"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="cdcdedx_hadron",
            collector=dedx.collect_hadron,
            algorithm=dedx.hadron_algorithm,
            input_files=files,
            payload_names=("CDCDedxHadronSaturation",),
            max_iterations=1,
        )
    ]
