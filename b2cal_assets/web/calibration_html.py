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

from markupsafe import Markup

from b2cal_assets.domain.stages import Stage
from b2cal_assets.domain.states import CalibrationState
from b2cal_assets.loop.condb import CondbUploadResult
from b2cal_assets.loop.page_views import iov_label
from b2cal_assets.loop.service import StepRow
from b2cal_assets.loop.work_views import ProcessingOverview, StatusFilters, WorkItem, countdown, shown_state
from b2cal_assets.redaction import without_server_paths
from b2cal_assets.web.calibration_views import CalibrationView
from b2cal_assets.web.forms import human_bytes
from b2cal_assets.web.pages import CALIBRATION_STATUS_PATH, SETTINGS_SCRIPT
from b2cal_assets.web.rendering import render
from b2cal_assets.web.sessions import CSRF_FIELD, SessionUser
from b2cal_assets.web.settings_form import MARKER, settings_fields

STATUS_PATH = CALIBRATION_STATUS_PATH
WORK_PATH = "/b2cal/work"
EXPERT_FORMS = ("submit", "signoff", "upload")
MANAGER_FORMS = ("exclude", "include", "reassign", "restart")
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


def dagster_run_path(run_id: str) -> str:
    return f"/runs/{quote(run_id, safe='')}"


def plot_path(processing: str, calibration: str, name: str) -> str:
    return calibration_path(processing, calibration, "plots/" + quote(name, safe="/"))


def shown_forms(view: CalibrationView, allowed: Allowed) -> list[str]:
    """The forms that apply in the calibration's state now and that this person may use."""
    mine = [*(EXPERT_FORMS if allowed.expert else ()), *(MANAGER_FORMS if allowed.manage else ())]
    return [a for a in mine if a in view.actions]


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
        work_path=WORK_PATH,
        calibration_path=calibration_path,
        dagster_run_path=dagster_run_path,
        plot_path=plot_path,
        shown_state=shown_state,
        iov_label=iov_label,
        dagster_asset_path=dagster_asset_path,
        when=_when,
        # what the page shows of errors and recorded details names no server path
        last_line=lambda text: without_server_paths(_last_line(text)),
        to_json=lambda value: without_server_paths(_json(value)),
        step_notes=lambda row: [without_server_paths(n) for n in step_notes(row)],
        redact=without_server_paths,
        **context,
    )


def status_page(
    overviews: Sequence[ProcessingOverview],
    filters: StatusFilters,
    *,
    processings: Sequence[str],
    experts: Iterable[str],
    known: Iterable[str],
    user: SessionUser,
    csrf_token: str,
    error: str = "",
    uploads: Mapping[str, CondbUploadResult] | None = None,
) -> str:
    """Every processing: counts per state, the critical path and what blocks it, the filtered rows."""
    return _page(
        "status.html",
        "b2cal: status",
        user=user,
        csrf_token=csrf_token,
        error=error,
        overviews=overviews,
        filters=filters,
        options={
            "processing": list(processings),
            "stage": [s.value for s in Stage],
            "state": [s.value for s in CalibrationState],
            "expert": sorted(set(experts) - {""}),
        },
        known=set(known),
        uploads=uploads or {},
    )


def work_page(items: Sequence[WorkItem], *, now: datetime, user: SessionUser, csrf_token: str) -> str:
    """An expert's calibrations across the open processings, what to do now first."""
    return _page(
        "work.html",
        "b2cal: my work",
        user=user,
        csrf_token=csrf_token,
        todo=[i for i in items if i.todo.needs_action],
        rest=[i for i in items if not i.todo.needs_action],
        countdown=lambda deadline: countdown(deadline, now),
    )


def calibration_page(
    view: CalibrationView,
    *,
    user: SessionUser,
    csrf_token: str,
    allowed: Allowed,
    notice: str = "",
    error: str = "",
    values: dict[str, Any] | None = None,
    field_errors: dict[str, str] | None = None,
) -> str:
    values = values or {}
    latest = view.attempts[0].expert_config if view.attempts else {}
    fields = settings_fields(view.defaults, {**view.defaults, **latest}, values.get("settings"), field_errors)
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
        forms=shown_forms(view, allowed),
        fields=fields,
        form_error=(field_errors or {}).get("_form", ""),
        settings_marker=MARKER,
        settings_script=Markup(SETTINGS_SCRIPT),
        todo=view.todo,
        upload_limit=human_bytes(allowed.upload_limit_bytes),
    )


def message_page(title: str, message: str, *, user: SessionUser, csrf_token: str) -> str:
    """A page that only says what went wrong (unknown processing, no payloads, ...)."""
    return _page(
        "message.html", f"b2cal: {title}", user=user, csrf_token=csrf_token, error=message, heading=title
    )
