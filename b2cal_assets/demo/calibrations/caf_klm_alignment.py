"""KLM sector alignment from di-muon tracks extrapolated with the aligned VXD and CDC."""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings
from prompt.calibrations.caf_vxdcdc_alignment import settings as vxdcdc_alignment

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import alignment

F = INPUT_DATA_FILTERS


settings = CalibrationSettings(
    name="caf_klm_alignment",
    expert_username="klm_expert",
    subsystem="klm",
    description="KLM barrel sector shifts (u, z) from muon hit residuals",
    input_data_formats=["raw"],
    input_data_names=["mumu_tight_or_highm_calib"],
    input_data_filters={
        "mumu_tight_or_highm_calib": [
            F["Data Tag"]["mumu_tight_or_highm_calib"],
            F["Run Type"]["physics"],
            F["Magnet"]["On"],
            F["Data Quality Tag"]["Good Or Recoverable"],
        ],
    },
    depends_on=[vxdcdc_alignment],
    expert_config={"max_files_per_run": 3, "max_events_per_file": 50000, "min_hits_per_sector": 100},
    produced_payloads=["KLMAlignment"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="klm_alignment",
            collector=alignment.collect_klm,
            algorithm=alignment.klm_algorithm,
            input_files=files,
            payload_names=("KLMAlignment",),
            max_iterations=1,
            max_collector_jobs=4,
        )
    ]
