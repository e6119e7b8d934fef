"""Where an installation keeps its files: everything lives under ``$B2CAL_HOME`` (default ``./.b2cal``).

The one source of these paths: other modules ask here instead of reading the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from b2cal_assets.settings import settings


def b2cal_home() -> Path:
    """``$B2CAL_HOME`` as an absolute path; unset or empty: ``./.b2cal``."""
    return settings().home.expanduser().resolve()


def dagster_home() -> Path:
    """``$DAGSTER_HOME`` (Dagster's own variable), else ``$B2CAL_HOME/dagster``."""
    configured = os.environ.get("DAGSTER_HOME", "").strip()
    return Path(configured).resolve() if configured else b2cal_home() / "dagster"


def data_dir() -> Path:
    """Where the catalog's files live when the site's storage root is local (the demo's skims)."""
    return b2cal_home() / "data"


def globaltags_root() -> Path:
    """Where the global tags are kept locally, one folder per tag."""
    return b2cal_home() / "globaltags"


def globaltag_dir(tag: str) -> Path:
    """A global tag kept locally in the framework's outputdb layout (``database.txt`` + payload files)."""
    return globaltags_root() / tag


def attempt_work_dir(processing: str, calibration: str, attempt: int) -> Path:
    return b2cal_home() / "work" / processing / calibration / f"attempt_{attempt}"


def validation_work_dir(processing: str, calibration: str, attempt: int) -> Path:
    """Where an attempt's validation job runs (its results are then copied to the payload store); apart
    from the attempt's own work directory, which a restart reuses as the runner's checkpoint."""
    return b2cal_home() / "validation_work" / processing / calibration / f"attempt_{attempt}"


def payloads_root() -> Path:
    """The payload store's root (backed up with the database)."""
    return b2cal_home() / "payloads"


def payload_dir(processing: str, calibration: str, attempt: int) -> Path:
    """The payload store: one outputdb per attempt, never overwritten."""
    return payloads_root() / processing / calibration / f"attempt_{attempt}"


def cdst_dir(processing: str) -> Path:
    return b2cal_home() / "cdst" / processing


def backups_dir() -> Path:
    return b2cal_home() / "backups"

