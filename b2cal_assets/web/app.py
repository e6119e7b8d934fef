"""The Dagster webserver's own Starlette app, built in Python, with the b2cal login layer around it.

``DagsterWebserver`` and ``create_app_from_workspace_process_context`` are internal Dagster APIs
(dagster_webserver has no public extension API); the project accepts them as the one exception to
"no Dagster internals" (docs/architecture.md, STYLE.md). The extension points used are the ones the
``dagster-webserver`` command itself goes through: ``build_graphql_schema`` (to guard mutations),
``build_middleware`` (the login check in front of every route, websocket included), ``build_routes``
(login, logout, health check, and the calibration pages of ``calibration_pages``),
``_make_request_context`` (viewers get Dagster's read-only context, so
the UI greys out what they cannot do) and ``index_html_endpoint`` (who is logged in, or the no-login
warning).
"""

from __future__ import annotations

import getpass
import secrets
from typing import Any

from dagster._core.workspace.context import IWorkspaceProcessContext, WorkspaceRequestContext
from dagster_webserver.webserver import DagsterWebserver
from graphene import Schema
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from b2cal_assets.web.calibration_pages import CalibrationPages, LoopFactory, default_loop_service
from b2cal_assets.web.config import SessionSettings
from b2cal_assets.web.graphql_guard import USER_SCOPE_KEY, AuditSink, MutationGuard
from b2cal_assets.web.hosts import loopback_host
from b2cal_assets.web.login import LoginService, health, user_of
from b2cal_assets.web.middleware import (
    UNSAFE_METHODS,
    HardeningMiddleware,
    LoginRequiredMiddleware,
    same_origin,
)
from b2cal_assets.web.pages import inject_before_body_end, no_auth_strip, user_strip
from b2cal_assets.web.permissions import AssignedExpert, Authorizer
from b2cal_assets.web.roles import Role
from b2cal_assets.web.sessions import SessionCodec, SessionUser


class B2calWebserver(DagsterWebserver):
    """``DagsterWebserver`` behind the login (``login`` given) or open with a warning (``login=None``)."""

    def __init__(
        self,
        process_context: IWorkspaceProcessContext,
        *,
        login: LoginService | None,
        authorizer: Authorizer | None,
        audit: AuditSink | None = None,
        loop: LoopFactory | None = None,
        live_data_poll_rate: int | None = None,
    ):
        if login is not None and authorizer is None:
            raise ValueError("a login layer needs an authorizer")
        self._login = login
        # the forms of the calibration pages are signed like the login's; --no-auth signs with a one-off key
        codec = (
            login.codec if login is not None else SessionCodec(secrets.token_urlsafe(48), SessionSettings())
        )
        loop_service = loop or default_loop_service
        self._pages = CalibrationPages(
            loop_service, codec, find_user=login.find_user if login is not None else None
        )
        # --no-auth: everyone is a local admin, but launches are still tagged with the local user
        self._authorizer = authorizer or Authorizer(lambda _processing, _calibration: None)
        self._guard = MutationGuard(
            self._authorizer, audit, processings=lambda: loop_service().all_processing_names()
        )
        super().__init__(process_context, "", live_data_poll_rate)

    def build_graphql_schema(self) -> Schema:
        schema = super().build_graphql_schema()  # a fresh schema per webserver: wrapping it is private
        if self._guard is not None:
            self._guard.install(schema.graphql_schema)
        return schema

    def build_middleware(self) -> list[Middleware]:
        middleware = super().build_middleware()
        if self._login is not None:
            middleware.insert(
                0, Middleware(LoginRequiredMiddleware, login=self._login, authorizer=self._authorizer)
            )
        else:
            middleware.insert(0, Middleware(NoAuthUserMiddleware, user=no_auth_user()))
        middleware.insert(0, Middleware(HardeningMiddleware))
        return middleware

    def build_routes(self) -> list[BaseRoute]:
        own: list[BaseRoute] = (
            list(self._login.routes()) if self._login is not None else [Route("/healthz", health)]
        )
        return own + list(self._pages.routes()) + super().build_routes()

    def _make_request_context(self, conn: HTTPConnection) -> Any:
        context = super()._make_request_context(conn)
        user = conn.scope.get(USER_SCOPE_KEY)
        if (
            isinstance(user, SessionUser)
            and user.role < Role.EXPERT
            and isinstance(context, WorkspaceRequestContext)
        ):
            return WorkspaceRequestContext(
                instance=context.instance,
                current_workspace=context.get_current_workspace(),
                process_context=context.process_context,
                version=context.version,
                source=conn,
                read_only=True,
            )
        return context

    def index_html_endpoint(self, request: Request) -> Response:
        response = super().index_html_endpoint(request)
        page = bytes(response.body).decode("utf8")
        user = user_of(request)
        cookie_nonce = None
        if self._login is None:
            page = inject_before_body_end(page, no_auth_strip())
        elif user is not None:
            token, cookie_nonce = self._login.csrf_token_for(request)
            page = inject_before_body_end(page, user_strip(user, token))
        headers = {
            k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")
        }
        new = HTMLResponse(page, status_code=response.status_code, headers=headers)
        if cookie_nonce is not None and self._login is not None:
            self._login.codec.set_csrf_cookie(new, request, cookie_nonce)
        return new


def no_auth_user() -> SessionUser:
    """In ``--no-auth`` mode everyone is this local admin, so runs are still tagged with a name."""
    try:
        name = getpass.getuser()
    except Exception:
        name = "local"
    return SessionUser(username=f"{name} (no-auth)", role=Role.ADMIN)


class NoAuthUserMiddleware:
    """``--no-auth``: everyone is the local admin, so only this machine's browser may talk to it:
    a ``Host`` other than loopback (DNS rebinding) and cross-site changes (CSRF) are refused."""

    def __init__(self, app: ASGIApp, *, user: SessionUser):
        self.app = app
        self.user = user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            conn = HTTPConnection(scope)
            unsafe = scope["type"] == "websocket" or scope.get("method") in UNSAFE_METHODS
            refusal = ""
            if not loopback_host(conn.headers.get("host", "")):
                refusal = "--no-auth serves only http://localhost or 127.0.0.1 (Host refused)"
            elif unsafe and not same_origin(conn.headers):
                refusal = "cross-site request refused"
            if refusal:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4403, "reason": refusal})
                else:
                    await JSONResponse({"error": refusal}, status_code=403)(scope, receive, send)
                return
            scope[USER_SCOPE_KEY] = self.user
        await self.app(scope, receive, send)


def build_app(
    workspace_process_context: IWorkspaceProcessContext,
    *,
    login: LoginService | None,
    assigned_expert: AssignedExpert | None = None,
    audit: AuditSink | None = None,
    loop: LoopFactory | None = None,
    **starlette_kwargs: Any,
) -> Starlette:
    """The served app: ``login=None`` is the loud ``--no-auth`` mode, else every route needs a session.

    ``loop`` gives the calibration pages their ``LoopService`` (default: the deployment's database and
    scripts, see ``calibration_pages.default_loop_service``).
    """
    if login is not None and assigned_expert is None:
        raise ValueError("build_app with a login needs assigned_expert")
    authorizer = Authorizer(assigned_expert) if login is not None and assigned_expert is not None else None
    server = B2calWebserver(
        workspace_process_context, login=login, authorizer=authorizer, audit=audit, loop=loop
    )
    return server.create_asgi_app(**starlette_kwargs)
