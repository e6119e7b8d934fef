"""The environment of a real daemon over a toy ``B2CAL_HOME`` (the e2e fault tests and benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path

from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS

REPO = Path(__file__).resolve().parents[2]


def toy_daemon_env(root: Path, **extra: str) -> dict[str, str]:
    """The toy scripts and cDST producer, a pool of 2, the repository importable; ``extra`` on top."""
    return {
        "B2CAL_HOME": str(root),
        "DAGSTER_HOME": str(root / "dagster"),
        "B2CAL_CALIBRATIONS_DIR": str(TOY_SCRIPTS),
        "B2CAL_CDST_PRODUCER": "b2cal_assets_tests.defs.toy:produce_cdst",
        "B2CAL_LOCAL_MAX_PROCESSES": "2",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **extra,
    }
