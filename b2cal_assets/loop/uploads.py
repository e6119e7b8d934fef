"""An expert's replacement payloads entering the loop: checked, installed as a new attempt, checked again.

Everything is checked before anything is stored (``payloads.upload.check_upload``). The files go into
a new attempt directory of the payload store in one rename and the database rows (attempt, payload
revisions, audit entry, calibration state) in one transaction; if the transaction fails the directory
is removed again. An upload replaces exactly what it holds: the current revisions of the same payload
name whose IoV overlaps an uploaded one are marked superseded (kept, never deleted); every other current
revision stays in force. The calibration goes back to
``finished``, so the loop runs the payload checks again and signs off at automatic sites.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from b2cal_assets import home
from b2cal_assets.db.models import Attempt, Payload
from b2cal_assets.db.repo import attempts, audit, calibrations, catalog, payloads, processings
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.states import (
    UPLOADABLE_STATES,
    USED_DOWNSTREAM_STATES,
    AttemptState,
    CalibrationState,
    ProcessingState,
)
from b2cal_assets.loop.context import LoopContext
from b2cal_assets.loop.notices import Uploaded
from b2cal_assets.loop.records import LoopError, PayloadView, payload_view
from b2cal_assets.loop.transitions import end_attempt, move_calibration
from b2cal_assets.payloads.upload import UploadRejected, check_upload, install_upload
from b2cal_assets.settings import DEFAULT_UPLOAD_MAX_BYTES, settings

DEFAULT_MAX_UPLOAD_BYTES = DEFAULT_UPLOAD_MAX_BYTES
UPLOAD_KEY = "upload"  # marks an attempt's job_config as an upload (never a job to rerun)


def max_upload_bytes() -> int:
    """``$B2CAL_UPLOAD_MAX_BYTES`` (default 512 MiB)."""
    return settings().upload_max_bytes


def is_upload(attempt: Attempt | None) -> bool:
    """The attempt holds an expert's uploaded payloads (there is no job of it to run again)."""
    return attempt is not None and UPLOAD_KEY in (attempt.job_config or {})


@dataclass(frozen=True)
class UploadResult:
    processing: str
    calibration: str
    attempt: int
    directory: Path
    payloads: list[PayloadView]
    replaced: list[str]  # "name rev N" now superseded
    dependents_done: list[str]  # downstream calibrations that already used the old payloads


def _runs_left_without(
    s: Session, processing: str, calibration: str, processing_iov: IoV, uploaded: Sequence[tuple[str, IoV]]
) -> str:
    """Why the upload would leave a catalogued run of the processing without a payload it has now ('' = none).

    The revisions an upload replaces (same name, overlapping IoV) must have their runs covered again by
    the upload or by the revisions it keeps.
    """
    replaced = payloads.overlapping_current(s, processing, calibration, [(n, tuple(i)) for n, i in uploaded])
    if not replaced:
        return ""
    ids = {p.id for p in replaced}
    kept = [p for p in payloads.current_payloads(s, processing, calibration) if p.id not in ids]
    runs = catalog.runs_in(
        s,
        exp_low=processing_iov.exp_low,
        run_low=processing_iov.run_low,
        exp_high=processing_iov.exp_high,
        run_high=processing_iov.run_high,
    )

    def iov_of(p: Payload) -> IoV:
        return IoV(p.exp_low, p.run_low, p.exp_high, p.run_high)

    for old in replaced:
        after = [i for n, i in uploaded if n == old.name] + [iov_of(p) for p in kept if p.name == old.name]
        lost = [
            f"{e},{r}"
            for e, r in runs
            if iov_of(old).contains_run(e, r) and not any(i.contains_run(e, r) for i in after)
        ]
        if lost:
            plural = "s" if len(lost) > 1 else ""
            shown = ", ".join(lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
            return (
                f"it replaces {old.name} rev {old.revision} (IoV {iov_of(old)}) but would leave run{plural} "
                f"{shown} without {old.name}; cover those runs in the upload too (download the current "
                "payloads with 'b2cal payloads download' and change only what needs fixing)"
            )
    return ""


def replace_payloads(
    ctx: LoopContext,
    processing: str,
    calibration: str,
    archive: Path,
    *,
    by: str,
    max_bytes: int | None = None,
) -> UploadResult:
    """Check ``archive`` and install it as the calibration's new payloads; ``LoopError`` when refused."""
    ctx.require_calibration(calibration)
    settings = ctx.scripts.calibrations[calibration].settings
    with ctx.session() as s:
        proc = processings.get_processing(s, processing)
        row = calibrations.get_calibration(s, processing, calibration)
        if row.excluded:
            raise LoopError(
                f"{calibration} is excluded from {processing}; include it before uploading payloads"
            )
        if row.state not in UPLOADABLE_STATES:
            raise LoopError(
                f"{calibration} in {processing} is {row.state}: payloads can be replaced once it has run "
                f"(states {', '.join(UPLOADABLE_STATES)})"
            )
        current = payloads.current_payloads(s, processing, calibration)
        produced = set(settings.produced_payloads or ()) or {p.name for p in current}
        iov = IoV(proc.exp_low, proc.run_low, proc.exp_high, proc.run_high)
        processing_finished = proc.state == ProcessingState.FINISHED
    if not produced:
        raise LoopError(
            f"{calibration} declares no produced_payloads and has none stored in {processing}: "
            "there is nothing an upload could replace"
        )
    try:
        contents = check_upload(
            archive, produced_payloads=produced, processing_iov=iov, max_bytes=max_bytes or max_upload_bytes()
        )
    except UploadRejected as exc:
        raise LoopError(f"upload refused, nothing was changed: {exc}") from None
    with contents:
        keys = [(p.name, p.revision) for p in contents.payloads]
        twice = sorted({f"{n} revision {r}" for n, r in keys if keys.count((n, r)) > 1})
        if twice:
            raise LoopError(
                f"upload refused, nothing was changed: {', '.join(twice)} is listed for more than one IoV; "
                "give each IoV its own revision file (as 'b2cal payloads download' does)"
            )
        with ctx.session() as s:
            lost = _runs_left_without(
                s, processing, calibration, iov, [(p.name, p.iov) for p in contents.payloads]
            )
        if lost:
            raise LoopError(f"upload refused, nothing was changed: {lost}")
        installed_dir: Path | None = None
        try:
            with ctx.session() as s:
                history = payloads.payload_history(s, processing)
                latest_rev: dict[str, int] = {}
                for old in history:
                    latest_rev[old.name] = max(latest_rev.get(old.name, 0), old.revision)
                uploaded = [(p.name, tuple(p.iov)) for p in contents.payloads]
                replaced = [
                    f"{old.name} rev {old.revision}"
                    for old in payloads.overlapping_current(s, processing, calibration, uploaded)
                ]
                attempt = attempts.create_attempt(
                    s,
                    processing,
                    calibration,
                    submitted_by=by,
                    job_config={UPLOAD_KEY: archive.name},
                    state=AttemptState.FINISHED,
                )
                target = home.payload_dir(processing, calibration, attempt.number) / "outputdb"
                revisions: dict[
                    tuple[str, int], int
                ] = {}  # the numbers record_payloads gives: the next revisions of each name, in order
                for p in contents.payloads:
                    if (p.name, p.revision) not in revisions:
                        latest_rev[p.name] = latest_rev.get(p.name, 0) + 1
                        revisions[(p.name, p.revision)] = latest_rev[p.name]
                installed = install_upload(contents, target, revisions=revisions)
                installed_dir = target.parent
                rows = payloads.record_payloads(
                    s,
                    processing,
                    calibration,
                    attempt.id,
                    [(p.name, p.checksum, tuple(p.iov), str(p.file)) for p in installed.payloads],
                    source="upload",
                    replace="overlapping",
                )
                end_attempt(s, attempt.id, AttemptState.FINISHED)
                move_calibration(s, processing, calibration, CalibrationState.FINISHED)
                if processing_finished:
                    processings.set_processing_state(s, processing, ProcessingState.OPEN)
                audit.record_audit(
                    s,
                    by,
                    "upload_payloads",
                    processing,
                    calibration,
                    {
                        "archive": archive.name,
                        "attempt": attempt.number,
                        "payloads": [f"{r.name} rev {r.revision}" for r in rows],
                        "replaced": replaced,
                    },
                )
                done = {
                    c.calibration
                    for c in calibrations.list_calibrations(s, processing)
                    if c.state in USED_DOWNSTREAM_STATES
                }
                result = UploadResult(
                    processing,
                    calibration,
                    attempt.number,
                    target,
                    [payload_view(r) for r in rows],
                    replaced,
                    sorted(ctx.dependents(calibration) & done),
                )
        except BaseException:
            if installed_dir is not None:
                shutil.rmtree(installed_dir, ignore_errors=True)
            raise
    ctx.notify(
        Uploaded(
            processing,
            calibration,
            result.attempt,
            by,
            archive.name,
            tuple(f"{p.name} rev {p.revision} {p.iov}" for p in result.payloads),
            tuple(replaced),
        )
    )
    return result
