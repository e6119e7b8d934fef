"""VXD and CDC global alignment from track residuals (a linear chi2 fit).

Uses the CDC t0s (a t0 error looks like a radial CDC shift) and the SVD time (a hit time moves its v
position) of the pre-tracking calibrations. Runs marked "Bad For Alignment" are left out.
"""

from caf.framework import Calibration
from prompt import INPUT_DATA_FILTERS, CalibrationSettings
from prompt.calibrations.caf_cdc_tracking import settings as cdc_tracking
from prompt.calibrations.caf_svd_time import settings as svd_time

from b2cal_assets.demo.input_files import select_input_files
from b2cal_assets.demo.subsystems import alignment

F = INPUT_DATA_FILTERS
_GOOD = F["Data Quality Tag"]["Good Or Recoverable"]
_PHYSICS = [F["Run Type"]["physics"], F["Magnet"]["On"], _GOOD]


settings = CalibrationSettings(
    name="caf_vxdcdc_alignment",
    expert_username="alignment_expert",
    subsystem="alignment",
    description="Global VXD and CDC shifts from di-muon, hadron, off-IP and cosmic track residuals",
    input_data_formats=["raw"],
    input_data_names=["mumu_tight_or_highm_calib", "hadron_calib", "offip_calib", "cosmic_calib"],
    input_data_filters={
        "mumu_tight_or_highm_calib": [F["Data Tag"]["mumu_tight_or_highm_calib"], *_PHYSICS],
        "hadron_calib": [F["Data Tag"]["hadron_calib"], *_PHYSICS],
        "offip_calib": [F["Data Tag"]["offip_calib"], *_PHYSICS],
        "cosmic_calib": [F["Data Tag"]["cosmic_calib"], _GOOD],
    },
    depends_on=[cdc_tracking, svd_time],
    expert_config={
        "max_files_per_run": 3,
        "max_events_per_file": 50000,
        "min_tracks": 500,
        "backend_args": {"request_memory": "4 GB"},
    },
    produced_payloads=["VXDAlignment", "CDCAlignment"],
)


def get_calibrations(input_data, **kwargs):
    config = kwargs.get("expert_config") or settings.expert_config
    files = select_input_files(input_data, sorted(settings.input_data_names), config["max_files_per_run"])
    return [
        Calibration(
            name="vxdcdc_alignment",
            collector=alignment.collect_vxdcdc,
            algorithm=alignment.vxdcdc_algorithm,
            input_files=files,
            payload_names=("VXDAlignment", "CDCAlignment"),
            max_iterations=1,
            max_collector_jobs=4,
            backend_args=dict(config.get("backend_args", {})),
        )
    ]
