"""What one calibration's page shows, read in one place: typed frozen rows, no HTML, no HTTP.

The page follows the calibration's state: ``applicable_actions`` says which forms apply now (the
loop's rules refuse the others anyway), the latest failure comes with its log tail and failing
subjobs, and the validation plots are found in the payload store next to the payloads they judge,
beside those of the previous processing for the same calibration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from b2cal_assets.db.errors import NotFound
from b2cal_assets.db.repo import attempts as attempt_repo
from b2cal_assets.db.repo import audit as audit_repo
from b2cal_assets.db.repo import calibrations as calibration_repo
from b2cal_assets.db.repo import jobs as job_repo
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.names import real_name
from b2cal_assets.domain.states import CalibrationState
from b2cal_assets.loop.decisions import shown_attempt_state
from b2cal_assets.loop.records import JobRow, LoopError, PayloadView, SiteView, StepRow
from b2cal_assets.loop.service import LoopService
from b2cal_assets.loop.uploads import UPLOAD_KEY
from b2cal_assets.loop.validation import VALIDATION_WORKDIR, VERDICT_FILE
from b2cal_assets.loop.work_views import Todo, todo_of

HISTORY_LENGTH = 25
LOG_TAIL_LINES = 25
PLOT_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")
RESULT_FILE = "validation_result.json"  # the script's own verdict (caf.validation_job.RESULT_FILE)

_C = CalibrationState


@dataclass(frozen=True)
class SettingChange:
    """One expert_config key an attempt ran with a value other than the script's default."""

    key: str
    default: Any
    value: Any


@dataclass(frozen=True)
class AttemptView:
    number: int
    state: str
    submitted_by: str
    submitted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    iterations: int
    expert_config: dict[str, Any]
    job_config: dict[str, Any]
    error: str
    dagster_run_id: str
    changes: tuple[SettingChange, ...]  # against the script's defaults

    @property
    def is_upload(self) -> bool:
        return UPLOAD_KEY in self.job_config


@dataclass(frozen=True)
class AuditView:
    at: datetime
    user: str
    action: str
    details: dict[str, Any]


@dataclass(frozen=True)
class FailedSubjob:
    name: str
    state: str
    exit_code: int | None
    log_tail: str  # the end of its stderr (else stdout)


@dataclass(frozen=True)
class FailureView:
    """The latest attempt's failure: what it said, which subjobs failed, and its Dagster run."""

    attempt: int
    error_tail: str
    subjobs: tuple[FailedSubjob, ...]
    dagster_run_id: str


@dataclass(frozen=True)
class PlotSet:
    """The validation plots over one processing's current payloads and the verdict they came with."""

    processing: str
    plots: tuple[str, ...]  # paths relative to the validation run's directory
    verdict: str  # "passed", "failed", or "" (not validated yet)
    summary: str


@dataclass(frozen=True)
class TimelineBar:
    """A payload revision's IoV as a bar over the processing's runs (percentages of its width)."""

    name: str
    revision: int
    iov: IoV
    left: float
    width: float

    @property
    def label(self) -> str:
        return iov_label(self.iov)


def iov_label(iov: IoV) -> str:
    """``exp 1 runs 3-4``, ``exp 1 run 3 - exp 2 run 7``, ``exp 1 run 3 onwards``: an IoV in words."""
    if iov.exp_high == -1 or (iov.run_high == -1 and iov.exp_high == iov.exp_low):
        return f"exp {iov.exp_low} run {iov.run_low} onwards"
    if iov.exp_low == iov.exp_high:
        if iov.run_low == iov.run_high:
            return f"exp {iov.exp_low} run {iov.run_low}"
        return f"exp {iov.exp_low} runs {iov.run_low}-{iov.run_high}"
    high = "end" if iov.run_high == -1 else f"run {iov.run_high}"
    return f"exp {iov.exp_low} run {iov.run_low} - exp {iov.exp_high} {high}"


@dataclass(frozen=True)
class CalibrationView:
    """Everything the page of one calibration (step) in one processing shows."""

    processing: str
    calibration: str
    row: StepRow
    is_calibration: bool  # False for the cDST production step: nothing to submit, sign off or upload
    iov: IoV
    site: SiteView
    defaults: dict[str, Any]  # the script's expert_config
    attempts: list[AttemptView]
    jobs: list[JobRow]
    payloads: list[PayloadView]
    history: list[AuditView]
    actions: frozenset[str]
    failure: FailureView | None
    plots: PlotSet | None
    previous_plots: PlotSet | None
    timeline: tuple[TimelineBar, ...]
    todo: Todo  # what the expert must do now


def applicable_actions(row: StepRow, *, is_calibration: bool, has_attempts: bool) -> frozenset[str]:
    """The actions that apply in the step's state now (who may use them is the web layer's question)."""
    if not is_calibration:
        return frozenset()
    state = row.state
    if row.excluded:
        return frozenset({"include", "reassign"})
    actions = {"exclude", "reassign"}
    if state in (_C.WINDOW_OPEN, _C.FAILED, _C.REJECTED):
        actions.add("submit")
    if state in (_C.FINISHED, _C.SIGNED_OFF, _C.REJECTED):
        actions.add("signoff")
    if state in (_C.FAILED, _C.FINISHED, _C.SIGNED_OFF, _C.REJECTED):
        actions.add("upload")
    if has_attempts and state in (_C.SUBMITTED, _C.RUNNING, _C.FAILED, _C.FINISHED, _C.REJECTED):
        actions.add("restart")
    return frozenset(actions)


def setting_changes(defaults: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[SettingChange, ...]:
    return tuple(
        SettingChange(key, defaults.get(key), value)
        for key, value in sorted(config.items())
        if key not in defaults or defaults[key] != value
    )


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _file_tail(path: Path) -> str:
    try:
        return tail(path.read_text(errors="replace"))
    except OSError:
        return ""


def _subjob_log(workdir: str) -> str:
    if not workdir:
        return ""
    folder = Path(workdir)
    return _file_tail(folder / "stderr") or _file_tail(folder / "stdout")


def validation_dir(payloads: list[PayloadView]) -> Path | None:
    """Where the validation ran over these payloads: beside their ``outputdb/`` in the payload store."""
    if not payloads:
        return None
    return Path(payloads[0].file).parent.parent / VALIDATION_WORKDIR


def _verdict(folder: Path) -> tuple[str, str]:
    for name in (VERDICT_FILE, RESULT_FILE):
        try:
            data = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "passed" in data:
            return ("passed" if data["passed"] else "failed"), str(data.get("summary", ""))
    return "", ""


def plot_set(service: LoopService, processing: str, calibration: str) -> PlotSet | None:
    """The plots of the latest validation over the current payloads; None before any payload."""
    folder = validation_dir(service.current_payloads(processing, calibration))
    if folder is None:
        return None
    plots: tuple[str, ...] = ()
    if folder.is_dir():
        plots = tuple(
            p.relative_to(folder).as_posix()
            for p in sorted(folder.rglob("*"))
            if p.suffix.lower() in PLOT_SUFFIXES and p.is_file()
        )
    verdict, summary = _verdict(folder)
    return PlotSet(processing, plots, verdict, summary)


def plot_file(service: LoopService, processing: str, calibration: str, name: str) -> Path | None:
    """The file of a plot the page lists (by its listed name only: no other file is reachable)."""
    plots = plot_set(service, processing, calibration)
    folder = validation_dir(service.current_payloads(processing, calibration))
    if plots is None or folder is None or name not in plots.plots:
        return None
    return folder / name


def previous_processing(service: LoopService, processing: str, calibration: str) -> str | None:
    """The latest processing registered before this one in which the calibration has payloads."""
    names = service.all_processing_names()
    earlier = names[: names.index(processing)] if processing in names else []
    for name in reversed(earlier):
        if calibration in service.step_states(name) and service.current_payloads(name, calibration):
            return name
    return None


def _position(iov: IoV, exp: int, run: int) -> float:
    """Where (exp, run) falls along the processing's IoV, 0..1 (runs within one experiment)."""
    if exp < iov.exp_low or (exp == iov.exp_low and run < iov.run_low):
        return 0.0
    if iov.exp_high != -1 and (
        exp > iov.exp_high or (exp == iov.exp_high and (run == -1 or run > iov.run_high))
    ):
        return 1.0
    if iov.exp_low != iov.exp_high or iov.run_high == -1:
        span_e = max(1, (iov.exp_high if iov.exp_high != -1 else exp) - iov.exp_low + 1)
        return min(1.0, (exp - iov.exp_low) / span_e)
    span = iov.run_high - iov.run_low + 1
    return min(1.0, max(0.0, (run - iov.run_low) / span))


def timeline(iov: IoV, payloads: list[PayloadView]) -> tuple[TimelineBar, ...]:
    bars = []
    for p in payloads:
        left = _position(iov, p.iov.exp_low, p.iov.run_low)
        if p.iov.exp_high == -1 or (p.iov.run_high == -1 and p.iov.exp_high >= iov.exp_high):
            right = 1.0
        else:
            right = _position(iov, p.iov.exp_high, p.iov.run_high + 1)
        bars.append(
            TimelineBar(
                p.name, p.revision, p.iov, round(left * 100, 2), round(max(right - left, 0.01) * 100, 2)
            )
        )
    return tuple(sorted(bars, key=lambda b: (b.name, b.left, b.revision)))


def calibration_view(service: LoopService, processing: str, calibration: str) -> CalibrationView:
    """The page's content; ``LoopError`` names what exists when the processing or step does not."""
    names = service.all_processing_names()
    if processing not in names:
        raise LoopError(f"no processing named {processing!r}; known: {', '.join(names) or 'none'}")
    rows = {row.step: row for row in service.status_rows(processing)}
    if calibration not in rows:
        known = ", ".join(rows) or "none yet (the loop has not looked at this processing)"
        raise LoopError(f"no calibration {calibration!r} in processing {processing}; known: {known}")
    script = service.scripts.calibrations.get(calibration)
    defaults = dict(script.settings.expert_config or {}) if script is not None else {}
    site = service.site_of(processing)
    failure: FailureView | None = None
    with service.session() as s:
        stored = attempt_repo.list_attempts(s, processing, calibration)
        attempts = [
            AttemptView(
                a.number,
                shown_attempt_state(a.state, site_holds_jobs=site.hold_until_deadline),
                a.submitted_by,
                a.submitted_at,
                a.started_at,
                a.finished_at,
                a.iterations,
                dict(a.expert_config or {}),
                dict(a.job_config or {}),
                a.error or "",
                a.dagster_run_id or "",
                setting_changes(defaults, dict(a.expert_config or {})),
            )
            for a in stored
        ]
        if stored and stored[-1].state == "failed":
            latest = stored[-1]
            failed = [
                FailedSubjob(j.name, j.state, j.exit_code, _subjob_log(j.workdir))
                for j in job_repo.list_jobs(s, latest.id)
                if j.state == "failed" or (j.exit_code is not None and j.exit_code != 0)
            ]
            failure = FailureView(
                latest.number, tail(latest.error or ""), tuple(failed), latest.dagster_run_id or ""
            )
        history = [
            AuditView(e.at, e.user, e.action, dict(e.details or {}))
            for e in audit_repo.list_audit(
                s, processing=processing, calibration=calibration, limit=HISTORY_LENGTH
            )
        ]
    row = rows[calibration]
    is_calibration = script is not None
    payloads = service.current_payloads(processing, calibration) if is_calibration else []
    iov = service.processing_iov(processing)
    previous = previous_processing(service, processing, calibration) if is_calibration else None
    return CalibrationView(
        processing=processing,
        calibration=calibration,
        row=row,
        is_calibration=is_calibration,
        iov=iov,
        site=site,
        defaults=defaults,
        attempts=list(reversed(attempts)),  # newest first
        jobs=service.job_rows(processing, calibration) if is_calibration else [],
        payloads=payloads,
        history=history,
        actions=applicable_actions(row, is_calibration=is_calibration, has_attempts=bool(attempts)),
        failure=failure,
        plots=plot_set(service, processing, calibration) if is_calibration else None,
        previous_plots=plot_set(service, previous, calibration) if previous else None,
        timeline=timeline(iov, payloads),
        todo=todo_of(row, service.clock()),
    )


def assigned_expert(service: LoopService, processing: str, calibration: str) -> str | None:
    """The expert the calibration database names for this calibration in this processing
    (``calibration`` may be the Dagster name an asset key carries)."""
    calibration = real_name(calibration, service.scripts.calibrations)
    with service.session() as s:
        try:
            return calibration_repo.get_calibration(s, processing, calibration).expert_username or None
        except NotFound:
            return None
