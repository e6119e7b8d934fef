"""The code location's root: loads the ``defs`` package and nothing else.

``B2CAL_CALIBRATIONS_DIR`` picks the calibration scripts (default: the demo set) and
``B2CAL_CDST_PRODUCER`` (``module:function``) the cDST reconstruction (default: the demo detector's).
"""

import os

import dagster as dg

from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.resources import DEFAULT_CDST_PRODUCER, CalibrationLoopResource


@dg.definitions
def defs() -> dg.Definitions:
    calibrations_dir = os.environ.get("B2CAL_CALIBRATIONS_DIR", "")
    loop = CalibrationLoopResource(
        calibrations_dir=calibrations_dir,
        cdst_producer=os.environ.get("B2CAL_CDST_PRODUCER", DEFAULT_CDST_PRODUCER),
    )
    return build_definitions(calibrations_dir, loop=loop)
