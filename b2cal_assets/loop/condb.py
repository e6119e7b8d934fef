"""A processing's signed-off payloads into its staging global tag in the conditions database.

When: at the end of the processing (``B2CAL_CONDB_UPLOAD_AT=processing``, the default) or at each
sign-off (``signoff``); the tick or the sign-off marks the upload due and ``condb_upload_sensor``
does it, so a slow or unreachable server never holds up the loop.

How (the framework's ``b2conditionsdb upload`` rules, made resumable): the payloads are checked
first (the staging tag's overlap and gap checks); the tag, named by ``B2CAL_CONDB_TAG_PATTERN``, is
created OPEN if missing, and a tag that is not OPEN is never written; ``checkPayloads`` and the tag's
IoVs say what is there already, so the same name + checksum is never uploaded twice and the same IoV
never added twice. Each request is recorded in the calibration database before it is sent, so an
upload cut half-way resumes where it stopped. After the upload the tag's content, as the server
lists it, is checked again for overlaps and gaps before it is offered for merging.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from b2cal_assets.conditions.condb_api import (
    CondbError,
    CondbRefused,
    CondbUnavailable,
    GlobalTag,
    RemotePayload,
    TagState,
)
from b2cal_assets.conditions.staging import SignedOffPayload, StagingError, build_entries
from b2cal_assets.db.errors import InvalidValue
from b2cal_assets.db.models import CondbUpload
from b2cal_assets.db.repo import condb as repo
from b2cal_assets.db.repo import processings
from b2cal_assets.domain.iov import IoV
from b2cal_assets.loop.context import LoopContext
from b2cal_assets.loop.job_inputs import JobInputs
from b2cal_assets.loop.staging import tag_name
from b2cal_assets.settings import settings

if TYPE_CHECKING:  # the HTTP client is the caller's: reading an upload's state needs no HTTP library
    from b2cal_assets.conditions.condb_client import ConditionsDbClient

MAX_BACKOFF = timedelta(hours=1)
FIRST_BACKOFF = timedelta(seconds=30)


condb_tag_name = tag_name  # the staging tag has one name, locally and in the conditions database


def upload_moment() -> str:
    """``processing`` or ``signoff``: when signed-off payloads go up."""
    return settings().condb_upload_at


@dataclass(frozen=True)
class UploadRow:
    """One payload IoV as the calibration database records its upload."""

    calibration: str
    name: str
    revision: int
    checksum: str
    iov: IoV
    state: str
    payload_id: int | None
    condb_revision: int | None
    iov_id: int | None
    error: str

    @classmethod
    def of(cls, row: CondbUpload) -> UploadRow:
        return cls(
            row.calibration,
            row.name,
            row.revision,
            row.checksum,
            IoV(row.exp_low, row.run_low, row.exp_high, row.run_high),
            row.state,
            row.payload_id,
            row.condb_revision,
            row.iov_id,
            row.error,
        )


@dataclass(frozen=True)
class CondbUploadResult:
    """What an upload did; ``outcome`` is uploaded, unavailable, refused or problems."""

    processing: str
    tag: str
    outcome: str
    tag_state: str = ""
    error: str = ""
    problems: list[str] = field(default_factory=list)
    rows: list[UploadRow] = field(default_factory=list)
    sent_payloads: int = 0
    sent_iovs: int = 0
    due: bool = False
    next_try_at: datetime | None = None
    uploaded_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "uploaded"

    def describe(self) -> str:
        """One line for a log, the status or the CLI."""
        done = sum(r.state == "done" for r in self.rows)
        if self.outcome == "uploaded":
            return (
                f"staging tag {self.tag}: {done} payload IoV(s) in the conditions database "
                f"({self.sent_payloads} payload(s) and {self.sent_iovs} IoV(s) sent now); ready for merging"
            )
        if self.outcome == "unavailable":
            when = f"; next try after {self.next_try_at:%Y-%m-%d %H:%M:%S} UTC" if self.next_try_at else ""
            return f"staging tag {self.tag}: not uploaded yet, {self.error}{when}"
        if self.outcome == "problems":
            return f"staging tag {self.tag}: not offered for merging: " + "; ".join(self.problems)
        if self.outcome == "refused":
            return f"staging tag {self.tag}: {self.error}"
        return f"staging tag {self.tag}: no upload yet"


Todo = tuple[int, UploadRow, str]  # an upload row's id, what it records, the payload file


class CondbUploads:
    """Marks uploads due and performs them with a ``ConditionsDbClient`` (given by the caller)."""

    def __init__(self, ctx: LoopContext, inputs: JobInputs) -> None:
        self.ctx = ctx
        self.inputs = inputs

    def due(self) -> list[str]:
        with self.ctx.session() as s:
            return repo.due_condb_processings(s, self.ctx.clock())

    def upload_due(self, client: ConditionsDbClient, *, by: str) -> list[CondbUploadResult]:
        """Every due upload whose backoff is over (the upload sensor).

        Once the server is found unreachable the other due uploads are not tried in this tick (each
        would wait through its retries): they get the same backoff and the same message.
        """
        results: list[CondbUploadResult] = []
        for name in self.due():
            down = next((r for r in results if r.outcome == "unavailable"), None)
            if down is not None:
                results.append(self._unavailable(name, down.error.removesuffix("; retrying"), [0, 0]))
            else:
                results.append(self.upload(name, client, by=by))
        return results

    def view(self, processing: str) -> CondbUploadResult | None:
        """The recorded state of the processing's upload, or None if none was ever due."""
        return self.views([processing]).get(processing)

    def views(self, processings: Iterable[str]) -> dict[str, CondbUploadResult]:
        """The recorded uploads of those processings that have one (two queries for all of them)."""
        with self.ctx.session() as s:
            return {
                name: CondbUploadResult(
                    name,
                    tag.name,
                    tag.outcome,
                    tag.state,
                    tag.last_error,
                    list(tag.problems or []),
                    [UploadRow.of(r) for r in rows],
                    due=tag.due,
                    next_try_at=tag.next_try_at,
                    uploaded_at=tag.uploaded_at,
                )
                for name, (tag, rows) in repo.uploads_by_processing(s, processings).items()
            }

    def upload(self, processing: str, client: ConditionsDbClient, *, by: str) -> CondbUploadResult:
        """Upload (or resume) the processing's signed-off payloads; never raises for the server's answers."""
        name = condb_tag_name(processing)
        planned = self._plan(processing, name)
        if isinstance(planned, CondbUploadResult):
            return planned
        processing_iov, todo = planned
        sent = [0, 0]
        try:
            tag = self._open_tag(client, name, processing, by)
            if tag.state is not TagState.OPEN:
                message = (
                    f"staging tag {name} is {tag.state.value} in the conditions database: "
                    "b2cal writes only OPEN tags, nothing was uploaded"
                )
                return self._finish(processing, "refused", error=message, tag=tag)
            pending = [t for t in todo if t[1].state != "done"]
            known = client.check_payloads({(row.name, row.checksum) for _i, row, _f in pending})
            present = {(i.payload.id, i.iov): i.id for i in client.tag_iovs(name)}
            refusals = [
                error
                for upload_id, row, file in pending
                if (error := self._one(client, tag, upload_id, row, Path(file), known, present, sent))
            ]
            if refusals:
                more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
                return self._finish(processing, "refused", error=refusals[0] + more, tag=tag, sent=sent)
            problems = _check_remote(client, name, processing_iov)
        except CondbUnavailable as exc:
            return self._unavailable(processing, str(exc), sent)
        except CondbError as exc:  # a refusal of the tag itself (a wrong token, ...) or an odd answer
            error = f"staging tag {name}: the conditions database refused the upload: {exc}"
            return self._finish(processing, "refused", error=error, sent=sent)
        if problems:
            return self._finish(processing, "problems", problems=problems, tag=tag, sent=sent)
        return self._finish(processing, "uploaded", tag=tag, sent=sent)

    def _plan(self, processing: str, name: str) -> CondbUploadResult | tuple[IoV, list[Todo]]:
        """The checked payload IoVs, one recorded row each; or the result that stops the upload here."""
        try:
            with self.ctx.session() as s:
                p = processings.get_processing(s, processing)
                processing_iov = IoV(p.exp_low, p.run_low, p.exp_high, p.run_high)
                repo.ensure_condb_tag(s, processing, name)
        except InvalidValue as exc:  # uploaded under another tag name before: not moved silently
            return CondbUploadResult(processing, name, "refused", error=str(exc))
        payloads = self.inputs.signed_off_payloads(processing)
        if not payloads:
            return self._finish(processing, "problems", problems=["no signed-off payloads: nothing to upload"])
        try:
            entries = build_entries(payloads, processing_iov)  # the staging tag's checks, before anything
        except StagingError as exc:
            return self._finish(processing, "problems", problems=exc.problems)
        calibration_of = {(p.name, p.checksum, p.iov): p.calibration for p in payloads}
        wanted = [
            (
                calibration_of.get((e.name, e.checksum, e.iov), ""),
                e.name,
                e.revision,
                e.checksum,
                (e.iov.exp_low, e.iov.run_low, e.iov.exp_high, e.iov.run_high),
                str(e.file),
            )
            for e in entries
        ]
        with self.ctx.session() as s:
            rows = repo.plan_uploads(s, repo.ensure_condb_tag(s, processing, name), wanted)
            return processing_iov, [(r.id, UploadRow.of(r), r.file) for r in rows]

    # --- the steps ---------------------------------------------------------------------------
    def _open_tag(self, client: ConditionsDbClient, name: str, processing: str, by: str) -> GlobalTag:
        tag = client.global_tag(name)
        if tag is not None:
            return tag
        try:
            return client.create_global_tag(name, f"b2cal staging tag of processing {processing}", by)
        except CondbRefused:
            found = client.global_tag(name)  # created meanwhile (another upload, a retried request)
            if found is None:
                raise
            return found

    def _one(
        self,
        client: ConditionsDbClient,
        tag: GlobalTag,
        upload_id: int,
        row: UploadRow,
        file: Path,
        known: dict[tuple[str, str], RemotePayload],
        present: dict[tuple[int, IoV], int],
        sent: list[int],
    ) -> str:
        """One payload IoV: the payload unless the server has it, then the IoV unless the tag has it.

        Returns the refusal ("" when it is in the tag); the row records it either way.
        """
        what = f"payload {row.name} revision {row.revision} IoV {row.iov}"
        stored = known.get((row.name, row.checksum))
        if stored is None and row.payload_id is None:
            self._set(upload_id, "sending_payload")
            try:
                stored = client.create_payload(row.name, file, row.checksum)
                sent[0] += 1
            except CondbRefused as exc:
                # stored meanwhile by another upload (the CLI and the sensor at once): use it
                stored = client.check_payloads([(row.name, row.checksum)]).get((row.name, row.checksum))
                if stored is None:
                    return self._refuse(upload_id, f"{what} refused by the conditions database: {exc.reason}")
            except OSError as exc:
                return self._refuse(upload_id, f"{what}: its file cannot be read: {exc.strerror}")
            known[(row.name, row.checksum)] = stored
        payload_id = stored.id if stored else row.payload_id
        assert payload_id is not None
        revision = stored.revision if stored else row.condb_revision
        self._set(upload_id, "payload", payload_id=payload_id, condb_revision=revision, error="")
        iov_id = present.get((payload_id, row.iov))
        if iov_id is None:
            self._set(upload_id, "sending_iov")
            try:
                iov_id = client.create_iov(tag.id, payload_id, row.iov)
                sent[1] += 1
            except CondbRefused as exc:
                listed = {(i.payload.id, i.iov): i.id for i in client.tag_iovs(tag.name)}
                if (payload_id, row.iov) not in listed:
                    return self._refuse(upload_id, f"{what} refused by the conditions database: {exc.reason}")
                iov_id = listed[(payload_id, row.iov)]  # added meanwhile by another upload
            present[(payload_id, row.iov)] = iov_id
        self._set(upload_id, "done", iov_id=iov_id, error="")
        return ""

    def _refuse(self, upload_id: int, error: str) -> str:
        self._set(upload_id, "refused", error=error)
        return error

    def _set(self, upload_id: int, state: str, **fields: object) -> None:
        with self.ctx.session() as s:
            repo.set_upload(s, upload_id, state, **fields)

    def _unavailable(self, processing: str, error: str, sent: list[int]) -> CondbUploadResult:
        """The server went away: the upload stays due, tried again after a doubling wait."""
        with self.ctx.session() as s:
            tag = repo.get_condb_tag(s, processing)
            failures = (tag.failures if tag else 0) + 1
            wait = min(FIRST_BACKOFF * 2 ** (failures - 1), MAX_BACKOFF)
            repo.update_condb_tag(
                s,
                processing,
                outcome="unavailable",
                failures=failures,
                next_try_at=self.ctx.clock() + wait,
                last_error=f"{error}; retrying",
                due=True,
            )
        return self._result(processing, sent)

    def _finish(
        self,
        processing: str,
        outcome: str,
        *,
        error: str = "",
        problems: list[str] | None = None,
        tag: GlobalTag | None = None,
        sent: list[int] | None = None,
    ) -> CondbUploadResult:
        fields: dict[str, object] = {
            "outcome": outcome,
            "last_error": error,
            "problems": list(problems or []),
            "due": False,
            "failures": 0,
            "next_try_at": None,
        }
        if tag is not None:
            fields.update(condb_id=tag.id, state=tag.state.value)
        if outcome == "uploaded":
            fields["uploaded_at"] = self.ctx.clock()
        with self.ctx.session() as s:
            repo.update_condb_tag(s, processing, **fields)
        return self._result(processing, sent or [0, 0])

    def _result(self, processing: str, sent: list[int]) -> CondbUploadResult:
        view = self.view(processing)
        assert view is not None  # the tag row was written before
        return dataclasses.replace(view, sent_payloads=sent[0], sent_iovs=sent[1])


def _check_remote(client: ConditionsDbClient, name: str, processing_iov: IoV) -> list[str]:
    """The staging checks (overlaps, gaps) on the tag as the server lists it: what merging will see."""
    listed = [
        SignedOffPayload(i.payload.name, i.payload.revision, i.payload.checksum, i.iov, Path(name))
        for i in client.tag_iovs(name)
    ]
    try:
        build_entries(listed, processing_iov)
    except StagingError as exc:
        return exc.problems
    return []
