"""Collision energy (eCMS) from di-muon and radiative di-muon events in the CMS frame of the boost."""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings
from prompt.calibrations.caf_boostvector import settings as boostvector

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import beam

F = INPUT_DATA_FILTERS
_PHYSICS_4S = [F["Run Type"]["physics"], F["Magnet"]["On"], F["Beam Energy"]["4S"]]

stage = "analysis"

settings = CalibrationSettings(
    name="caf_ecms",
    expert_username="beam_expert",
    subsystem="beam",
    description="Centre-of-mass energy from mu+mu- and mu+mu-gamma events, boosted with the boost vector",
    input_data_formats=["cdst"],
    input_data_names=["mumu_tight_or_highm_calib", "radmumu_calib"],
    input_data_filters={
        "mumu_tight_or_highm_calib": [F["Data Tag"]["mumu_tight_or_highm_calib"], *_PHYSICS_4S],
        "radmumu_calib": [F["Data Tag"]["radmumu_calib"], *_PHYSICS_4S],
    },
    depends_on=[boostvector],
    expert_config={
        "max_files_per_run": 3,
        "max_events_per_file": 50000,
        "min_entries": 1000,
        "muon_theta_range_deg": [50.0, 120.0],
    },
    produced_payloads=["CollisionInvariantMass"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="ecms",
            collector=beam.collect_ecms,
            algorithm=beam.ecms_algorithm,
            input_files=files,
            payload_names=("CollisionInvariantMass",),
            max_iterations=1,
        )
    ]
