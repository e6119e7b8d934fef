"""The HTML of the calibration pages beside the Dagster UI: server-rendered, no script, every value escaped.

Only the forms a person may use are shown; the server checks the same rules again on every POST.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from b2cal_assets.loop.service import StepRow
from b2cal_assets.web.calibration_views import CalibrationView
from b2cal_assets.web.forms import human_bytes
from b2cal_assets.web.pages import CALIBRATION_STATUS_PATH
from b2cal_assets.web.sessions import CSRF_FIELD, SessionUser

STATUS_PATH = CALIBRATION_STATUS_PATH
EXCLUDED_NOTE = "excluded by a manager: dependents use the global-tag payloads"

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#111827}
header{background:#1f2937;color:#fff;padding:.5rem 1rem;display:flex;gap:1rem;align-items:center}
header a{color:#93c5fd}header .who{margin-left:auto}header form{display:inline;margin:0}
header button{font:inherit;background:none;border:0;color:#93c5fd;cursor:pointer;text-decoration:underline}
main{padding:1rem 1.5rem;max-width:90rem}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;background:#fff;margin:.4rem 0 1rem;width:100%}
th,td{border:1px solid #d1d5db;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#e5e7eb}td.num{text-align:right}code,pre{font:12px ui-monospace,monospace}
pre{white-space:pre-wrap;margin:0}.state{font-weight:600}
.notice{background:#dcfce7;color:#14532d;padding:.6rem;border-radius:4px}
.error{background:#fde8e8;color:#9b1c1c;padding:.6rem;border-radius:4px}
.note{color:#4b5563}.forms{display:flex;flex-wrap:wrap;gap:1rem}
.forms form{background:#fff;border:1px solid #d1d5db;border-radius:6px;padding:.8rem;min-width:18rem}
.forms h3{margin:0 0 .5rem;font-size:1rem}label{display:block;margin:.4rem 0 .2rem}
textarea{width:100%;box-sizing:border-box;font:12px ui-monospace,monospace}
button.act{margin-top:.6rem;padding:.35rem .9rem;background:#4f43dd;color:#fff;border:0;border-radius:4px;
cursor:pointer}
"""


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


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, table_id: str, empty: str) -> str:
    """Cells are HTML already (escape before); an empty table is one sentence."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class=note id="{table_id}">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def step_notes(row: StepRow) -> list[str]:
    notes = []
    if row.excluded:
        notes.append(EXCLUDED_NOTE)
    if row.blocked_by:
        notes.append(f"blocked: {row.blocked_by} was rejected")
    if row.error:
        notes.append(f"last error: {_last_line(row.error)}")
    return notes


def layout(
    title: str, body: str, *, user: SessionUser, csrf_token: str, notice: str = "", error: str = ""
) -> str:
    messages = ""
    if notice:
        messages += f"<p class=notice role=status id=b2cal-notice>{escape(notice)}</p>"
    if error:
        messages += f"<p class=error role=alert id=b2cal-error>{escape(error)}</p>"
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f'<meta name=viewport content="width=device-width"><style>{_STYLE}</style></head><body>'
        f'<header><strong>b2cal</strong><a href="{STATUS_PATH}">status</a><a href="/">Dagster UI</a>'
        f"<span class=who><span id=b2cal-user-name>{escape(user.username)}</span> "
        f"(<span id=b2cal-user-role>{escape(user.role.label)}</span>) "
        '<form method=post action="/logout">'
        f'<input type=hidden name="{CSRF_FIELD}" value="{escape(csrf_token)}">'
        "<button type=submit>log out</button></form></span></header>"
        f"<main>{messages}{body}</main></body></html>"
    )


def status_page(
    groups: Sequence[tuple[str, Sequence[StepRow]]],
    calibrations: Iterable[str],
    *,
    user: SessionUser,
    csrf_token: str,
    error: str = "",
) -> str:
    known = set(calibrations)
    parts = ["<h1>Calibration status</h1>"]
    if not groups and not error:
        parts.append(
            "<p class=note>No processing yet: create one with <code>b2cal processing create</code>.</p>"
        )
    for processing, rows in groups:
        cells = []
        for row in rows:
            link = f'<a href="{escape(calibration_path(processing, row.step))}">{escape(row.step)}</a>'
            dagster = (
                f'<a href="{escape(dagster_asset_path(row.step))}">asset</a>' if row.step in known else ""
            )
            latest = f"#{row.attempts} {escape(row.attempt_state)}" if row.attempts else ""
            cells.append(
                [
                    link,
                    escape(row.stage),
                    f"<span class=state>{escape(row.state)}</span>",
                    escape(row.expert),
                    latest,
                    escape(row.submitted_by),
                    escape(row.jobs),
                    escape(_when(row.deadline)),
                    "<br>".join(escape(n) for n in step_notes(row)),
                    dagster,
                ]
            )
        parts.append(f"<h2>Processing {escape(processing)}</h2>")
        parts.append(
            _table(
                [
                    "calibration",
                    "stage",
                    "state",
                    "expert",
                    "latest attempt",
                    "submitted by",
                    "jobs",
                    "deadline",
                    "notes",
                    "Dagster",
                ],
                cells,
                table_id=f"status-{escape(processing)}",
                empty="No calibrations yet: the loop sensor adds them at its next tick.",
            )
        )
    return layout("b2cal: status", "".join(parts), user=user, csrf_token=csrf_token, error=error)


def _hidden(csrf_token: str) -> str:
    return f'<input type=hidden name="{CSRF_FIELD}" value="{escape(csrf_token)}">'


def _form(view: CalibrationView, action: str, title: str, inner: str, csrf_token: str, *, files=False) -> str:
    enctype = ' enctype="multipart/form-data"' if files else ""
    target = escape(calibration_path(view.processing, view.calibration, action))
    return (
        f'<form method=post action="{target}" id=form-{action}{enctype}><h3>{escape(title)}</h3>'
        f"{_hidden(csrf_token)}{inner}<button type=submit class=act>{escape(title)}</button></form>"
    )


def _expert_forms(
    view: CalibrationView, csrf_token: str, allowed: Allowed, values: dict[str, str]
) -> list[str]:
    settings = values.get("expert_config") or json.dumps(view.defaults, indent=2, sort_keys=True)
    forms = [
        _form(
            view,
            "submit",
            "Submit",
            "<label for=expert_config>expert_config (JSON; the script's defaults shown)</label>"
            f"<textarea id=expert_config name=expert_config rows=6>{escape(settings)}</textarea>"
            "<label for=max_collector_jobs>max_collector_jobs (optional)</label>"
            "<input type=number min=1 id=max_collector_jobs name=max_collector_jobs "
            f'value="{escape(values.get("max_collector_jobs", ""))}">',
            csrf_token,
        ),
        _form(
            view,
            "signoff",
            "Sign off",
            "<label><input type=radio name=decision value=accept checked> accept</label>"
            "<label><input type=radio name=decision value=reject> reject</label>"
            "<label for=comment>comment</label><textarea id=comment name=comment rows=2></textarea>",
            csrf_token,
        ),
        _form(
            view,
            "upload",
            "Upload replacement",
            "<label for=archive>archive (.tar.gz or .zip: database.txt and its dbstore_*.root files; "
            f"at most {escape(human_bytes(allowed.upload_limit_bytes))})</label>"
            "<input type=file id=archive name=archive accept=.gz,.tgz,.zip required>",
            csrf_token,
            files=True,
        ),
    ]
    return forms


def _manager_forms(view: CalibrationView, csrf_token: str) -> list[str]:
    row = view.row
    forms = []
    if row.excluded:
        forms.append(
            _form(view, "include", "Include", "<p class=note>Take it back into the loop.</p>", csrf_token)
        )
    else:
        forms.append(
            _form(
                view,
                "exclude",
                "Exclude",
                "<label for=reason>reason</label><input type=text id=reason name=reason maxlength=500>",
                csrf_token,
            )
        )
    forms.append(
        _form(
            view,
            "reassign",
            "Reassign",
            "<label for=expert>new expert (user name)</label>"
            f'<input type=text id=expert name=expert required maxlength=64 value="{escape(row.expert)}">',
            csrf_token,
        )
    )
    forms.append(
        _form(
            view,
            "restart",
            "Restart",
            "<p class=note>A new attempt with the last settings; the old attempt and its logs are kept.</p>",
            csrf_token,
        )
    )
    return forms


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
    row = view.row
    site = view.site
    p, c = view.processing, view.calibration
    facts = [
        ("processing", escape(p)),
        ("calibration", escape(c)),
        ("stage", escape(row.stage)),
        ("state", f"<span class=state id=calibration-state>{escape(row.state)}</span>"),
        ("expert", f"<span id=calibration-expert>{escape(row.expert)}</span>"),
        ("deadline", escape(_when(row.deadline))),
        ("processing IoV", escape(str(view.iov))),
        (
            "site",
            escape(
                f"{site.name} (sign-off {site.signoff_policy}"
                + (", jobs held until the deadline" if site.hold_until_deadline else "")
                + ")"
            ),
        ),
        ("notes", "<br>".join(escape(n) for n in step_notes(row))),
    ]
    if view.is_calibration:
        facts.append(("in Dagster", f'<a href="{escape(dagster_asset_path(c))}">payloads/{escape(c)}</a>'))
    parts = [
        f"<h1>{escape(c)} in {escape(p)}</h1>",
        "<table id=facts><tbody>"
        + "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in facts)
        + "</tbody></table>",
    ]

    parts.append("<h2>Attempts</h2>")
    parts.append(
        _table(
            [
                "#",
                "state",
                "submitted by",
                "submitted",
                "started",
                "finished",
                "iterations",
                "settings",
                "error",
            ],
            (
                [
                    str(a.number),
                    escape(a.state + (" (upload)" if a.is_upload else "")),
                    escape(a.submitted_by),
                    escape(_when(a.submitted_at)),
                    escape(_when(a.started_at)),
                    escape(_when(a.finished_at)),
                    str(a.iterations),
                    f"<pre>{escape(_json(a.expert_config))}"
                    + (f"\n{escape(_json(a.job_config))}" if a.job_config else "")
                    + "</pre>",
                    escape(_last_line(a.error)),
                ]
                for a in view.attempts
            ),
            table_id="attempts",
            empty="No attempt yet.",
        )
    )

    if view.jobs:
        parts.append("<h2>Collector jobs of the latest attempt</h2>")
        parts.append(
            _table(
                ["attempt", "job", "backend", "state", "exit code", "tries"],
                (
                    [
                        str(j.attempt),
                        escape(j.name),
                        escape(j.backend),
                        escape(j.state),
                        "" if j.exit_code is None else str(j.exit_code),
                        str(j.tries),
                    ]
                    for j in view.jobs
                ),
                table_id="jobs",
                empty="",
            )
        )

    if view.is_calibration:
        parts.append("<h2>Payloads</h2>")
        parts.append(
            _table(
                ["name", "revision", "IoV", "md5", "source"],
                (
                    [
                        escape(pl.name),
                        str(pl.revision),
                        escape(str(pl.iov)),
                        f"<code>{escape(pl.checksum)}</code>",
                        escape(pl.source),
                    ]
                    for pl in view.payloads
                ),
                table_id="payloads",
                empty="No payloads yet.",
            )
        )
        if view.payloads:
            href = escape(calibration_path(p, c, "payloads.tar.gz"))
            parts.append(f'<p><a id=download href="{href}">Download these payloads (.tar.gz)</a></p>')

    forms: list[str] = []
    if view.is_calibration and allowed.expert:
        forms += _expert_forms(view, csrf_token, allowed, values or {})
    if view.is_calibration and allowed.manage:
        forms += _manager_forms(view, csrf_token)
    if forms:
        parts.append("<h2>Actions</h2><div class=forms>" + "".join(forms) + "</div>")

    parts.append("<h2>History</h2>")
    parts.append(
        _table(
            ["when", "who", "action", "details"],
            (
                [
                    escape(_when(h.at)),
                    escape(h.user),
                    escape(h.action),
                    f"<pre>{escape(_json(h.details))}</pre>",
                ]
                for h in view.history
            ),
            table_id="history",
            empty="Nothing recorded yet.",
        )
    )
    return layout(
        f"b2cal: {c} in {p}", "".join(parts), user=user, csrf_token=csrf_token, notice=notice, error=error
    )


def message_page(title: str, message: str, *, user: SessionUser, csrf_token: str) -> str:
    """A page that only says what went wrong (unknown processing, no payloads, ...)."""
    body = (
        f'<h1>{escape(title)}</h1><p><a href="{STATUS_PATH}">Back to the status of every processing</a></p>'
    )
    return layout(f"b2cal: {title}", body, user=user, csrf_token=csrf_token, error=message)
