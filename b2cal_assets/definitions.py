"""The code location's root: loads the ``defs`` package and nothing else."""

import os

import dagster as dg

from b2cal_assets.defs.definitions import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(os.environ.get("B2CAL_CALIBRATIONS_DIR", ""))
