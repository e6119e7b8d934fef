"""Beam spot position and size from di-muon vertices (cDSTs, vertices from the aligned VXD)."""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings
from prompt.calibrations.caf_cdcdedx_hadron import settings as cdcdedx_hadron
from prompt.calibrations.caf_top import settings as top

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import beam

F = INPUT_DATA_FILTERS

stage = "analysis"

settings = CalibrationSettings(
    name="caf_beamspot",
    expert_username="beam_expert",
    subsystem="beam",
    description="Beam spot position and size from e+e- -> mu+mu- vertices",
    input_data_formats=["cdst"],
    input_data_names=["mumu_tight_or_highm_calib"],
    input_data_filters={
        "mumu_tight_or_highm_calib": [
            F["Data Tag"]["mumu_tight_or_highm_calib"],
            F["Run Type"]["physics"],
            F["Magnet"]["On"],
            F["Beam Energy"]["4S"],
        ],
    },
    depends_on=[cdcdedx_hadron, top],
    expert_config={"max_files_per_run": 3, "max_events_per_file": 50000, "min_events": 500},
    produced_payloads=["BeamSpot"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="beamspot",
            collector=beam.collect_beamspot,
            algorithm=beam.beamspot_algorithm,
            input_files=files,
            payload_names=("BeamSpot",),
            max_iterations=1,
        )
    ]
