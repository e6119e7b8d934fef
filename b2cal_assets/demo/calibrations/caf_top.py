"""TOP common t0 on cDSTs: the module t0s of caf_top_pre applied, tracks from the aligned detector.

The expected photon arrival time depends on where the track is, so a wrong alignment biases it.
"""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings
from prompt.calibrations.caf_top_pre import settings as top_pre
from prompt.calibrations.caf_vxdcdc_alignment import settings as vxdcdc_alignment

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import top

F = INPUT_DATA_FILTERS

settings = CalibrationSettings(
    name="caf_top",
    expert_username="top_expert",
    subsystem="top",
    description="TOP common t0 from di-muon cDSTs",
    input_data_formats=["cdst"],
    input_data_names=["mumu_tight_or_highm_calib"],
    input_data_filters={
        "mumu_tight_or_highm_calib": [
            F["Data Tag"]["mumu_tight_or_highm_calib"],
            F["Run Type"]["physics"],
            F["Magnet"]["On"],
        ],
    },
    depends_on=[top_pre, vxdcdc_alignment],
    expert_config={"max_files_per_run": 2, "max_events_per_file": 50000, "min_photons": 2000},
    produced_payloads=["TOPCalCommonT0"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="top_common_t0",
            collector=top.collect_common_t0,
            algorithm=top.common_t0_algorithm,
            input_files=files,
            payload_names=("TOPCalCommonT0",),
            max_iterations=1,
        )
    ]
