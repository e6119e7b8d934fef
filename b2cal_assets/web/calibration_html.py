"""The HTML of the calibration pages beside the Dagster UI: server-rendered from the templates in
``web/templates/`` (autoescaped, every value escaped), no script.

Only the forms a person may use are shown; the server checks the same rules again on every POST.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from b2cal_assets.loop.condb import CondbUploadResult
from b2cal_assets.loop.service import StepRow
from b2cal_assets.redaction import without_server_paths
from b2cal_assets.web.calibration_views import CalibrationView
from b2cal_assets.web.forms import human_bytes
from b2cal_assets.web.pages import CALIBRATION_STATUS_PATH
from b2cal_assets.web.rendering import render
from b2cal_assets.web.sessions import CSRF_FIELD, SessionUser

STATUS_PATH = CALIBRATION_STATUS_PATH
EXCLUDED_NOTE = "excluded by a manager: dependents use the global-tag payloads"


@dataclass(frozen=True)
class Allowed:
    """Which forms the calibration page shows to this person."""

    expert: bool  # submit, sign off, upload
    manage: bool  # exclude, include, reassign, restart
    upload_limit_bytes: int


def calibration_path(processing: str, calibration: str, suffix: str = "") -> str:
    path = f"/b2cal/processing/{quote(processing, safe='')}/{quote(calibration, safe='')}"
    return f"{path}/{suffix}" if suffix else path


def dagster_asset_path(calibration: str) -> str:
    return f"/assets/payloads/{quote(calibration, safe='')}"


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else ""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def step_notes(row: StepRow) -> list[str]:
    notes = []
    if row.excluded:
        notes.append(EXCLUDED_NOTE)
    if row.blocked_by:
        notes.append(f"blocked: {row.blocked_by} was rejected")
    if row.error:
        notes.append(f"last error: {_last_line(row.error)}")
    return notes


def _page(template: str, title: str, *, user: SessionUser, csrf_token: str, **context: Any) -> str:
    """A calibration page: the header with the user, the notice or error, and the template's body."""
    context.setdefault("notice", "")
    context.setdefault("error", "")
    return render(
        template,
        title=title,
        user=user,
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token,
        status_path=STATUS_PATH,
        calibration_path=calibration_path,
        dagster_asset_path=dagster_asset_path,
        when=_when,
        # what the page shows of errors and recorded details names no server path
        last_line=lambda text: without_server_paths(_last_line(text)),
        to_json=lambda value: without_server_paths(_json(value)),
        step_notes=lambda row: [without_server_paths(n) for n in step_notes(row)],
        **context,
    )


def status_page(
    groups: Sequence[tuple[str, Sequence[StepRow]]],
    calibrations: Iterable[str],
    *,
    user: SessionUser,
    csrf_token: str,
    error: str = "",
    uploads: Mapping[str, CondbUploadResult] | None = None,
) -> str:
    return _page(
        "status.html",
        "b2cal: status",
        user=user,
        csrf_token=csrf_token,
        error=error,
        groups=groups,
        known=set(calibrations),
        uploads=uploads or {},
    )


def calibration_page(
    view: CalibrationView,
    *,
    user: SessionUser,
    csrf_token: str,
    allowed: Allowed,
    notice: str = "",
    error: str = "",
    values: dict[str, str] | None = None,
) -> str:
    values = values or {}
    return _page(
        "calibration.html",
        f"b2cal: {view.calibration} in {view.processing}",
        user=user,
        csrf_token=csrf_token,
        notice=notice,
        error=error,
        view=view,
        allowed=allowed,
        values=values,
        settings_text=values.get("expert_config") or json.dumps(view.defaults, indent=2, sort_keys=True),
        upload_limit=human_bytes(allowed.upload_limit_bytes),
    )


def message_page(title: str, message: str, *, user: SessionUser, csrf_token: str) -> str:
    """A page that only says what went wrong (unknown processing, no payloads, ...)."""
    return _page(
        "message.html", f"b2cal: {title}", user=user, csrf_token=csrf_token, error=message, heading=title
    )
