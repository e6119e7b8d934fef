"""The code location's root: loads the ``defs`` package and nothing else.

``B2CAL_CALIBRATIONS_DIR`` picks the calibration scripts (default: the demo set) and
``B2CAL_CDST_PRODUCER`` (``module:function``) the cDST reconstruction (default: the demo detector's),
run in batch jobs of ``B2CAL_CDST_FILES_PER_JOB`` raw files (default 0: one job per run).
"""

import dagster as dg

from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.env_vars import env_var
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.settings import settings


@dg.definitions
def defs() -> dg.Definitions:
    current = settings()
    loop = CalibrationLoopResource(
        database_url=env_var("database_url") or "",
        calibrations_dir=current.calibrations_dir,  # the assets are built from it at load time
        cdst_producer=env_var("cdst_producer") or current.cdst_producer,
        cdst_files_per_job=current.cdst_files_per_job,
    )
    return build_definitions(current.calibrations_dir, loop=loop)
