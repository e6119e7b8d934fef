"""The pages beside the Dagster UI that it cannot give: the status of every processing, one calibration's
page with its payloads, and the expert's and manager's actions.

Every action goes through ``LoopService`` (the CLI does the same), so the pages follow the loop's rules
and the audit log records who did what. Who may act is decided here, on the server, with the same
``Authorizer`` rules as the UI's GraphQL mutations: the assigned expert (or a manager) submits, signs
off and uploads; managers exclude, include, reassign and restart; viewers look.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from b2cal_assets.db.connection import display_url
from b2cal_assets.db.engine import database_url
from b2cal_assets.db.errors import DatabaseError, SchemaError
from b2cal_assets.db.migrate import check_schema
from b2cal_assets.domain.settings import ContractError
from b2cal_assets.loop.authority import require_authority
from b2cal_assets.loop.factory import loop_service
from b2cal_assets.loop.page_views import plot_file
from b2cal_assets.loop.service import LoopError, LoopService
from b2cal_assets.loop.uploads import max_upload_bytes
from b2cal_assets.loop.work_views import StatusFilters, my_work, overviews
from b2cal_assets.payloads.archive import ArchiveError, current_payloads_archive
from b2cal_assets.payloads.upload import UploadRejected
from b2cal_assets.redaction import without_server_paths
from b2cal_assets.web.calibration_html import (
    STATUS_PATH,
    WORK_PATH,
    Allowed,
    calibration_page,
    calibration_path,
    message_page,
    status_page,
    work_page,
)
from b2cal_assets.web.calibration_views import assigned_expert, calibration_view
from b2cal_assets.web.forms import (
    FormRejected,
    check_csrf,
    file_field,
    human_bytes,
    json_object_field,
    optional_int_field,
    read_form,
    safe_filename,
    text_field,
)
from b2cal_assets.web.login import user_of
from b2cal_assets.web.pages import PAGE_HEADERS
from b2cal_assets.web.permissions import Authorizer, Decision, Target
from b2cal_assets.web.roles import Role
from b2cal_assets.web.sessions import SessionCodec, SessionUser
from b2cal_assets.web.settings_form import SettingsRejected, submitted_settings

log = logging.getLogger(__name__)

LoopFactory = Callable[[], LoopService]

PREFIX = "/b2cal"
FORM_MAX_BYTES = 1024 * 1024
MULTIPART_SLACK_BYTES = 64 * 1024
# the refusals a person can act on: shown on the page as they are
USER_ERRORS = (LoopError, UploadRejected, ContractError, DatabaseError, FormRejected)

EXPERT_ACTIONS = {"submit": "submit", "signoff": "sign off", "upload": "upload payloads"}
MANAGER_ACTIONS = {
    "exclude": "Excluding a calibration",
    "include": "Including a calibration",
    "reassign": "Reassigning a calibration",
    "restart": "Restarting a calibration",
}


def default_loop_service() -> LoopService:
    """The deployment's loop: ``$B2CAL_DATABASE_URL`` (or SQLite in ``$B2CAL_HOME``) and its scripts.

    A database without the b2cal tables (``make dev`` before ``make demo``) is a page saying what to
    run, not an internal error.
    """
    _schema_is_current(database_url())
    return loop_service()


@functools.cache
def _schema_is_current(url: str) -> None:
    """Checked once per URL while it holds (a ``SchemaError`` is not cached: the next request asks again)."""
    try:
        check_schema(url)
    except SchemaError as exc:
        said = str(exc).replace(display_url(url), "the calibration database")  # no server path on a page
        raise SchemaError(f"{said} (`make demo` makes a demo database)") from None


class CalibrationPages:
    """The routes under ``/b2cal``; ``codec`` signs the CSRF tokens of the forms."""

    def __init__(
        self,
        loop: LoopFactory,
        codec: SessionCodec,
        *,
        upload_limit: Callable[[], int] = max_upload_bytes,
        find_user: Callable[[str], str | None] | None = None,
    ):
        self.loop = loop
        self.codec = codec
        self.upload_limit = upload_limit
        self.find_user = find_user  # the directory (LDAP): a reassignment names someone who exists

    def routes(self) -> list[Route]:
        base = PREFIX + "/processing/{processing}/{calibration}"
        return [
            Route(PREFIX, self.landing, methods=["GET"]),
            Route(PREFIX + "/", self.landing, methods=["GET"]),
            Route(WORK_PATH, self.work, methods=["GET"]),
            Route(STATUS_PATH, self.status, methods=["GET"]),
            Route(base, self.calibration, methods=["GET"]),
            Route(base + "/payloads.tar.gz", self.download, methods=["GET"]),
            Route(base + "/plots/{name:path}", self.plot, methods=["GET"]),
            Route(base + "/{action}", self.action, methods=["POST"]),
        ]

    # --- permissions -----------------------------------------------------------------------------
    def expert_decision(
        self, service: LoopService, user: SessionUser, processing: str, calibration: str, what: str
    ) -> Decision:
        """The assigned expert of this calibration in this processing, or a manager (GraphQL's rule)."""
        authorizer = Authorizer(lambda p, c: assigned_expert(service, p, c))
        target = Target(asset_keys=(("payloads", calibration),), processings=(processing,))
        return authorizer.calibration_action(user, what, target)

    @staticmethod
    def manager_decision(user: SessionUser, what: str) -> Decision:
        return Authorizer(lambda _p, _c: None).manager_action(user, what)

    def allowed(self, service: LoopService, user: SessionUser, processing: str, calibration: str) -> Allowed:
        return Allowed(
            expert=self.expert_decision(service, user, processing, calibration, "act on").allowed,
            manage=user.role >= Role.MANAGER,
            upload_limit_bytes=self.upload_limit(),
        )

    # --- responses -------------------------------------------------------------------------------
    def _html(self, request: Request, render: Callable[[str], str], status: int = 200) -> HTMLResponse:
        nonce, new = self.codec.csrf_nonce(request)
        response = HTMLResponse(
            render(self.codec.csrf_token(nonce, request)), status_code=status, headers=PAGE_HEADERS
        )
        if new:
            self.codec.set_csrf_cookie(response, request, nonce)
        return response

    def _message(
        self, request: Request, user: SessionUser, title: str, message: str, status: int
    ) -> Response:
        message = without_server_paths(message)  # what reaches a browser names no server path
        return self._html(
            request, lambda token: message_page(title, message, user=user, csrf_token=token), status
        )

    async def _calibration_response(
        self,
        request: Request,
        user: SessionUser,
        service: LoopService,
        processing: str,
        calibration: str,
        *,
        status: int = 200,
        notice: str = "",
        error: str = "",
        values: dict[str, Any] | None = None,
        field_errors: dict[str, str] | None = None,
    ) -> Response:
        try:
            view = await run_in_threadpool(calibration_view, service, processing, calibration)
        except USER_ERRORS as exc:
            return self._message(request, user, "Not found", str(exc), 404)
        allowed = await run_in_threadpool(self.allowed, service, user, processing, calibration)
        flash_kind, flash = self.codec.read_flash(request)
        if flash and not notice and not error:
            notice, error = (flash, "") if flash_kind == "notice" else ("", flash)
        error = without_server_paths(error)
        response = self._html(
            request,
            lambda token: calibration_page(
                view,
                user=user,
                csrf_token=token,
                allowed=allowed,
                notice=notice,
                error=error,
                values=values,
                field_errors=field_errors,
            ),
            status,
        )
        if request.cookies.get("b2cal_flash"):
            self.codec.clear_flash(response)
        return response

    async def _guarded(
        self, request: Request, handle: Callable[[SessionUser], Awaitable[Response]]
    ) -> Response:
        user = user_of(request)
        if user is None:  # the login middleware lets nobody through without a session
            return JSONResponse({"error": "login required"}, status_code=401)
        try:
            return await handle(user)
        except USER_ERRORS as exc:
            return self._message(request, user, "Cannot show this", str(exc), 503)
        except Exception:
            log.exception("calibration page %s failed", request.url.path)
            return self._message(
                request,
                user,
                "Something went wrong",
                "b2cal could not do this because of an internal error; it was logged. "
                "Tell the operators what you were doing.",
                500,
            )

    # --- pages -----------------------------------------------------------------------------------
    async def landing(self, request: Request) -> Response:
        """Where a login lands: a manager on every processing's status, anyone else on their work."""
        user = user_of(request)
        manager = user is not None and user.role >= Role.MANAGER
        return RedirectResponse(STATUS_PATH if manager else WORK_PATH, status_code=303)

    async def work(self, request: Request) -> Response:
        async def handle(user: SessionUser) -> Response:
            service = self.loop()
            items = await run_in_threadpool(my_work, service, user.username)
            now = service.clock()
            return self._html(request, lambda token: work_page(items, now=now, user=user, csrf_token=token))

        return await self._guarded(request, handle)

    async def status(self, request: Request) -> Response:
        """Every processing; ``?processing=&stage=&state=&expert=`` narrow it (GET: a link keeps them)."""
        query = request.query_params
        filters = StatusFilters(
            **{k: query.get(k, "").strip()[:128] for k in ("processing", "stage", "state", "expert")}
        )

        async def handle(user: SessionUser) -> Response:
            service = self.loop()
            shown = await run_in_threadpool(overviews, service, filters)
            processings = await run_in_threadpool(service.all_processing_names)
            experts = {e for o in shown for e in o.experts}
            error = ""
            if filters.processing and filters.processing not in processings:
                error = (
                    f"no processing named {filters.processing!r}; known: {', '.join(processings) or 'none'}"
                )
            names = list(service.scripts.calibrations)
            uploads = await run_in_threadpool(service.condb_uploads, [o.processing for o in shown])
            return self._html(
                request,
                lambda token: status_page(
                    shown,
                    filters,
                    processings=processings,
                    experts=experts,
                    known=names,
                    user=user,
                    csrf_token=token,
                    error=error,
                    uploads=uploads,
                ),
            )

        return await self._guarded(request, handle)

    async def plot(self, request: Request) -> Response:
        """A validation plot from the payload store, for anyone logged in; only the plots the page lists."""
        processing, calibration = request.path_params["processing"], request.path_params["calibration"]
        name = request.path_params["name"]

        async def handle(user: SessionUser) -> Response:
            service = self.loop()
            try:
                path = await run_in_threadpool(plot_file, service, processing, calibration, name)
            except USER_ERRORS as exc:
                return self._message(request, user, "Not found", str(exc), 404)
            if path is None or not path.is_file():
                return self._message(
                    request, user, "No such plot", f"{calibration} in {processing} has no plot {name!r}", 404
                )
            return FileResponse(
                path, headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"}
            )

        return await self._guarded(request, handle)

    async def calibration(self, request: Request) -> Response:
        processing, calibration = request.path_params["processing"], request.path_params["calibration"]

        async def handle(user: SessionUser) -> Response:
            return await self._calibration_response(request, user, self.loop(), processing, calibration)

        return await self._guarded(request, handle)

    async def download(self, request: Request) -> Response:
        """Any logged-in person may download the current payloads of a calibration."""
        processing, calibration = request.path_params["processing"], request.path_params["calibration"]

        async def handle(user: SessionUser) -> Response:
            service = self.loop()
            try:
                view = await run_in_threadpool(calibration_view, service, processing, calibration)
            except USER_ERRORS as exc:
                return self._message(request, user, "Not found", str(exc), 404)
            if not view.payloads:
                return self._message(
                    request, user, "No payloads", f"{calibration} has no payloads in {processing} yet", 404
                )
            workdir = Path(tempfile.mkdtemp(prefix="b2cal-download-"))
            name = f"{processing}_{calibration}.tar.gz"
            try:
                path = await run_in_threadpool(current_payloads_archive, view.payloads, workdir / name)
            except (ArchiveError, OSError) as exc:
                shutil.rmtree(workdir, ignore_errors=True)
                log.error("cannot pack the payloads of %s in %s: %s", calibration, processing, exc)
                return self._message(
                    request,
                    user,
                    "Payloads unavailable",
                    f"the stored payloads of {calibration} in {processing} cannot be packed: {exc}; "
                    "tell the operators",
                    500,
                )
            return FileResponse(
                path,
                media_type="application/gzip",
                filename=name,
                headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
                background=BackgroundTask(shutil.rmtree, workdir, ignore_errors=True),
            )

        return await self._guarded(request, handle)

    # --- actions ---------------------------------------------------------------------------------
    async def action(self, request: Request) -> Response:
        processing, calibration = request.path_params["processing"], request.path_params["calibration"]
        action = request.path_params["action"]

        async def handle(user: SessionUser) -> Response:
            service = self.loop()
            if action not in EXPERT_ACTIONS and action not in MANAGER_ACTIONS:
                known = ", ".join([*EXPERT_ACTIONS, *MANAGER_ACTIONS])
                return self._message(
                    request, user, "Unknown action", f"no action {action!r}; known: {known}", 404
                )
            try:
                view = await run_in_threadpool(calibration_view, service, processing, calibration)
            except USER_ERRORS as exc:
                return self._message(request, user, "Not found", str(exc), 404)
            if not view.is_calibration:
                return self._message(
                    request,
                    user,
                    "Not a calibration",
                    f"{calibration} is a loop step, not a calibration",
                    404,
                )
            if action in EXPERT_ACTIONS:
                decision = await run_in_threadpool(
                    self.expert_decision, service, user, processing, calibration, EXPERT_ACTIONS[action]
                )
            else:
                decision = self.manager_decision(user, MANAGER_ACTIONS[action])
            if not decision.allowed:
                log.warning(
                    "refused %s of %s in %s for %s: %s",
                    action,
                    calibration,
                    processing,
                    user.username,
                    decision.reason,
                )
                return await self._calibration_response(
                    request,
                    user,
                    service,
                    processing,
                    calibration,
                    status=403,
                    error=f"Not allowed: {decision.reason}",
                )
            values: dict[str, Any] = {}
            try:
                limit = self.upload_limit()
                if action == "upload":
                    form = await read_form(
                        request,
                        max_bytes=limit + MULTIPART_SLACK_BYTES,
                        too_large=f"upload refused, nothing was changed: the archive is larger than the "
                        f"limit of {human_bytes(limit)} (B2CAL_UPLOAD_MAX_BYTES)",
                    )
                else:
                    form = await read_form(request, max_bytes=FORM_MAX_BYTES)
                try:
                    check_csrf(self.codec, request, form)
                    if action == "submit":
                        values = {k: text_field(form, k) for k in ("expert_config", "max_collector_jobs")}
                    notice = await self._perform(service, user, action, processing, calibration, form, limit)
                finally:
                    await form.close()
            except USER_ERRORS as exc:
                status = exc.status if isinstance(exc, FormRejected) else 400
                field_errors = None
                if isinstance(exc, SettingsRejected):
                    values["settings"] = exc.values
                    field_errors = exc.errors
                return await self._calibration_response(
                    request,
                    user,
                    service,
                    processing,
                    calibration,
                    status=status,
                    error=str(exc),
                    values=values,
                    field_errors=field_errors,
                )
            log.info("%s: %s of %s in %s", user.username, action, calibration, processing)
            # post, redirect, get: a reload shows the page again and does not repeat the action
            response = RedirectResponse(calibration_path(processing, calibration), status_code=303)
            self.codec.set_flash(response, request, "notice", without_server_paths(notice))
            return response

        return await self._guarded(request, handle)

    async def _perform(
        self,
        service: LoopService,
        user: SessionUser,
        action: str,
        processing: str,
        calibration: str,
        form: FormData,
        upload_limit: int,
    ) -> str:
        """Do the action through the loop service; the sentence to show, or a ``USER_ERRORS`` refusal."""
        by = user.username
        if action in ("submit", "signoff"):  # the loop's own check, behind expert_decision
            await run_in_threadpool(
                require_authority,
                service,
                processing,
                calibration,
                by=by,
                role=user.role.label,
                action=EXPERT_ACTIONS[action],
            )
        if action == "submit":
            script = service.scripts.calibrations[calibration]
            typed = submitted_settings(form, dict(script.settings.expert_config or {}))
            expert_config = typed if typed is not None else json_object_field(form, "expert_config")
            job_config: dict[str, Any] = {}
            max_jobs = optional_int_field(form, "max_collector_jobs")
            if max_jobs is not None:
                job_config["max_collector_jobs"] = max_jobs
            return await run_in_threadpool(
                lambda: service.submit(
                    processing, calibration, by=by, expert_config=expert_config, job_config=job_config
                )
            )
        if action == "signoff":
            decision = text_field(form, "decision")
            comment = text_field(form, "comment").strip()
            state = await run_in_threadpool(
                lambda: service.sign_off(
                    processing, calibration, decision=decision, by=by, comment=comment, automatic=False
                )
            )
            verb = "accepted" if decision == "accept" else "rejected"
            return f"{calibration} in {processing} {verb} by {by}; it is now {state}"
        if action == "upload":
            return await self._upload(service, by, processing, calibration, form, upload_limit)
        if action == "exclude":
            reason = text_field(form, "reason").strip()
            await run_in_threadpool(lambda: service.exclude(processing, calibration, by=by, reason=reason))
            return f"{calibration} is excluded from {processing}: its dependents use the global-tag payloads"
        if action == "include":
            await run_in_threadpool(lambda: service.include(processing, calibration, by=by))
            return f"{calibration} is back in the loop of {processing}; its window opens when its inputs are ready"
        if action == "reassign":
            expert = text_field(form, "expert").strip()
            await run_in_threadpool(
                lambda: service.reassign(
                    processing, calibration, expert=expert, by=by, find_user=self.find_user
                )
            )
            stored: str | None = await run_in_threadpool(assigned_expert, service, processing, calibration)
            return f"{calibration} in {processing} is now assigned to {stored or expert}"
        number = await run_in_threadpool(lambda: service.restart(processing, calibration, by=by))
        return (
            f"{calibration} in {processing}: attempt {number} recorded with the last settings; "
            "the loop sensor starts it at its next tick"
        )

    async def _upload(
        self, service: LoopService, by: str, processing: str, calibration: str, form: FormData, limit: int
    ) -> str:
        upload = file_field(form, "archive")
        workdir = Path(tempfile.mkdtemp(prefix="b2cal-upload-"))
        try:
            archive = workdir / safe_filename(upload.filename or "")
            await upload.seek(0)
            with archive.open("wb") as out:
                while chunk := await upload.read(1 << 20):
                    out.write(chunk)
            result = await run_in_threadpool(
                lambda: service.upload_payloads(processing, calibration, archive, by=by, max_bytes=limit)
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        stored = ", ".join(f"{p.name} revision {p.revision} {p.iov}" for p in result.payloads)
        text = (
            f"upload stored as attempt {result.attempt}: {stored}; the payload checks run again at the next "
            "loop tick"
        )
        if result.replaced:
            text += f"; kept as earlier revisions: {', '.join(result.replaced)}"
        if result.dependents_done:
            text += (
                f"; note: {', '.join(result.dependents_done)} already used the previous payloads "
                "(a manager can restart them)"
            )
        return text
