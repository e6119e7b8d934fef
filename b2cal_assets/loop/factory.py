"""The one place a deployment's ``LoopService`` is made: the CLI, the web pages and Dagster share it.

A process keeps one service per database URL and scripts directory, and loads each scripts
directory once (definitions, sensors, assets and pages see the same scripts). Unset arguments come
from the settings (``$B2CAL_DATABASE_URL``, ``$B2CAL_CALIBRATIONS_DIR``); with
``$B2CAL_CALIBRATIONS_MANIFEST`` the calibrations come from that manifest (``caf/manifest.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path

from b2cal_assets.caf.manifest import ManifestError, load_calibrations, unusable_manifest
from b2cal_assets.caf.scripts import ScriptSet
from b2cal_assets.db.engine import database_url as default_database_url
from b2cal_assets.loop.service import LoopService
from b2cal_assets.settings import settings

__all__ = ["loop_service", "scripts"]


@functools.cache
def _scripts(calibrations_dir: str, manifest: str) -> ScriptSet:
    try:
        return load_calibrations(Path(calibrations_dir) if calibrations_dir else None, manifest or None)
    except ManifestError as exc:
        return unusable_manifest(exc)


def _manifest() -> str:
    return settings().calibrations_manifest.strip()


@functools.cache
def _service(url: str, calibrations_dir: str, manifest: str) -> LoopService:
    return LoopService(url, _scripts(calibrations_dir, manifest))


def _directory(calibrations_dir: str | None) -> str:
    return calibrations_dir or settings().calibrations_dir.strip()


def scripts(calibrations_dir: str | None = None) -> ScriptSet:
    """The calibration scripts of ``calibrations_dir`` (default: the settings'), loaded once per process."""
    return _scripts(_directory(calibrations_dir), _manifest())


def loop_service(database_url: str | None = None, calibrations_dir: str | None = None) -> LoopService:
    """The loop of a database and a scripts directory (defaults: the settings'), one per process."""
    return _service(database_url or default_database_url(), _directory(calibrations_dir), _manifest())
