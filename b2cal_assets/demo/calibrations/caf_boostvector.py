"""Boost vector of the collisions from di-muon events at the beam spot."""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings
from prompt.calibrations.caf_beamspot import settings as beamspot

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import beam

F = INPUT_DATA_FILTERS

stage = "analysis"

settings = CalibrationSettings(
    name="caf_boostvector",
    expert_username="beam_expert",
    subsystem="beam",
    description="Boost vector from the momenta of e+e- -> mu+mu- pairs whose vertex is at the beam spot",
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
    depends_on=[beamspot],
    expert_config={
        "max_files_per_run": 3,
        "max_events_per_file": 50000,
        "min_events": 500,
        "vertex_cut_sigma": 5.0,
    },
    produced_payloads=["CollisionBoostVector"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="boostvector",
            collector=beam.collect_boost,
            algorithm=beam.boost_algorithm,
            input_files=files,
            payload_names=("CollisionBoostVector",),
            max_iterations=1,
        )
    ]
