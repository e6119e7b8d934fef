"""Where an installation keeps its files: everything lives under ``$B2CAL_HOME`` (default ``./.b2cal``)."""

from __future__ import annotations

import os
from pathlib import Path


def b2cal_home() -> Path:
    return Path(os.environ.get("B2CAL_HOME", ".b2cal")).resolve()


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME", str(b2cal_home() / "dagster"))).resolve()


def data_dir() -> Path:
    """Where the catalog's files live when the site's storage root is local (the demo's skims)."""
    return b2cal_home() / "data"


def globaltag_dir(tag: str) -> Path:
    """A global tag kept locally in the framework's outputdb layout (``database.txt`` + payload files)."""
    return b2cal_home() / "globaltags" / tag


def attempt_work_dir(processing: str, calibration: str, attempt: int) -> Path:
    return b2cal_home() / "work" / processing / calibration / f"attempt_{attempt}"


def payload_dir(processing: str, calibration: str, attempt: int) -> Path:
    """The payload store: one outputdb per attempt, never overwritten."""
    return b2cal_home() / "payloads" / processing / calibration / f"attempt_{attempt}"


def cdst_dir(processing: str) -> Path:
    return b2cal_home() / "cdst" / processing


def backups_dir() -> Path:
    return b2cal_home() / "backups"
