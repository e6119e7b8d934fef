"""The calibration database behind the permission checks: who is assigned, and the audit log.

Both are plain callables so the web layer can be tested (and benchmarked) without a database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from b2cal_assets.db.engine import database_url, make_engine, session_scope
from b2cal_assets.db.errors import NotFound
from b2cal_assets.db.repo.audit import record_audit
from b2cal_assets.db.repo.calibrations import get_calibration
from b2cal_assets.domain.names import real_name
from b2cal_assets.loop.factory import scripts as loaded_scripts

log = logging.getLogger(__name__)


def _default_engine():
    return make_engine(database_url())


class DbAssignedExpert:
    """``(processing, calibration) -> expert user name``: the processing's assignment in the calibration
    DB, else the calibration script's ``settings.expert_username``, else None."""

    def __init__(self, engine=None, script_expert: Callable[[str], str | None] | None = None):
        self._engine = engine
        self._script_expert = script_expert or script_settings_expert

    @property
    def engine(self):
        if self._engine is None:
            self._engine = _default_engine()
        return self._engine

    def __call__(self, processing: str, calibration: str) -> str | None:
        if self._script_expert is script_settings_expert:  # asset keys carry the Dagster name
            calibration = real_name(calibration, _script_experts())
        with session_scope(self.engine) as session:
            try:
                expert = get_calibration(session, processing, calibration).expert_username
            except NotFound:
                expert = ""
        return expert or self._script_expert(calibration)


def _script_experts() -> dict[str, str]:
    return {name: script.settings.expert_username for name, script in loaded_scripts().calibrations.items()}


def script_settings_expert(calibration: str) -> str | None:
    """The expert named in the calibration script's settings (scripts from ``$B2CAL_CALIBRATIONS_DIR``,
    loaded once per process)."""
    return _script_experts().get(calibration) or None


class DbAudit:
    """Writes one audit entry per call through ``db.repo.audit.record_audit``."""

    def __init__(self, engine=None):
        self._engine = engine

    @property
    def engine(self):
        if self._engine is None:
            self._engine = _default_engine()
        return self._engine

    def __call__(
        self, user: str, action: str, processing: str, calibration: str, details: dict[str, Any]
    ) -> None:
        with session_scope(self.engine) as session:
            record_audit(session, user, action, processing, calibration, details)
