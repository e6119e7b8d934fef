"""The ASGI layer in front of the whole webserver: nothing but the login page and the health check is
served without a valid session, HTTP and websocket alike.

It also refuses cross-site requests that change things (an ``Origin`` that is not this server), lets
only subscriptions through the GraphQL websocket (mutations must come over HTTP, where the mutation
guard sees them), and lets only managers and admins post to the webserver's ``/report_*`` endpoints.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

from graphql import GraphQLError, OperationType, parse
from graphql.language import OperationDefinitionNode
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from b2cal_assets.web.graphql_guard import USER_SCOPE_KEY
from b2cal_assets.web.login import HEALTH_PATH, LOGIN_PATH, LoginService, login_redirect
from b2cal_assets.web.permissions import Authorizer, Target, asset_keys_from_paths
from b2cal_assets.web.roles import Role

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({LOGIN_PATH, HEALTH_PATH})
REPORT_PREFIXES = ("/report_asset_materialization/", "/report_asset_check/", "/report_asset_observation/")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WS_CLOSE_NOT_LOGGED_IN = 4401
WS_CLOSE_FORBIDDEN = 4403


def same_origin(headers: Headers) -> bool:
    """True without an Origin header (not a browser) or when it names this server's host."""
    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()


def websocket_operation_allowed(text: str) -> bool:
    """Only GraphQL subscriptions may start over the websocket."""
    try:
        message = json.loads(text)
    except ValueError:
        return False
    if not isinstance(message, dict) or message.get("type") != "start":
        return True
    payload = message.get("payload") or {}
    try:
        document = parse(str(payload.get("query") or ""))
    except GraphQLError:
        return True  # the webserver answers a syntax error itself
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return all(op.operation == OperationType.SUBSCRIPTION for op in operations)


class LoginRequiredMiddleware:
    def __init__(self, app: ASGIApp, *, login: LoginService, authorizer: Authorizer):
        self.app = app
        self.login = login
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        is_ws = scope["type"] == "websocket"
        unsafe = is_ws or scope.get("method") in UNSAFE_METHODS
        if unsafe and not same_origin(conn.headers):
            await self._refuse(scope, receive, send, 403, "cross-site request refused")
            return
        if scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        user = self.login.current_user(conn)
        if user is None:
            if is_ws:
                await send(
                    {"type": "websocket.close", "code": WS_CLOSE_NOT_LOGGED_IN, "reason": "login required"}
                )
                return
            accept = conn.headers.get("accept", "")
            if scope.get("method") == "GET" and "text/html" in accept:
                await login_redirect(conn)(scope, receive, send)
            else:
                await JSONResponse({"error": "login required", "login": LOGIN_PATH}, status_code=401)(
                    scope, receive, send
                )
            return
        scope[USER_SCOPE_KEY] = user
        if scope["path"].startswith(REPORT_PREFIXES):
            asset_path = scope["path"].split("/", 2)[2]
            target = Target(asset_keys=asset_keys_from_paths([asset_path.split("/")]), processings=None)
            decision = (
                self.authorizer.admin_only(user, "reporting events on non-calibration assets")
                if not target.calibrations
                else self.authorizer.manager_action(user, "reporting asset events", target)
            )
            if not decision.allowed:
                log.warning("refused %s for %s: %s", scope["path"], user.username, decision.reason)
                await JSONResponse({"error": f"Not allowed: {decision.reason}"}, status_code=403)(
                    scope, receive, send
                )
                return
        if is_ws:
            receive = self._subscriptions_only(receive, send, user.role)
        await self.app(scope, receive, send)

    @staticmethod
    def _subscriptions_only(receive: Receive, send: Send, role: Role) -> Receive:
        async def guarded_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive" and not websocket_operation_allowed(
                message.get("text") or "{}"
            ):
                log.warning(
                    "refused a non-subscription GraphQL operation over the websocket (role %s)", role.label
                )
                await send(
                    {
                        "type": "websocket.close",
                        "code": WS_CLOSE_FORBIDDEN,
                        "reason": "mutations go over HTTP",
                    }
                )
                return {"type": "websocket.disconnect", "code": WS_CLOSE_FORBIDDEN}
            return message

        return guarded_receive

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, reason: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": WS_CLOSE_FORBIDDEN, "reason": reason})
        else:
            await JSONResponse({"error": reason}, status_code=status)(scope, receive, send)


GRAPHQL_PATH = "/graphql"
MAX_GRAPHQL_BODY_BYTES = 4 * 1024 * 1024
FRAME_HEADERS = ((b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"))


class HardeningMiddleware:
    """Outermost: no page of the server may be framed (clickjacking), and a GraphQL POST must be one
    operation (a batched array would reach Dagster as a 500) of bounded size."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def framed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                for key, value in message.get("headers", []):
                    if key.lower() == b"content-security-policy" and b"frame-ancestors" not in value:
                        value = value.rstrip(b"; ") + b"; frame-ancestors 'none'"
                    headers.append((key, value))
                names = {k.lower() for k, _v in headers}
                headers += [(k, v) for k, v in FRAME_HEADERS if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        if scope["path"] == GRAPHQL_PATH and scope.get("method") == "POST":
            body, refusal = await _read_body(receive, MAX_GRAPHQL_BODY_BYTES)
            if not refusal and body.lstrip()[:1] == b"[":
                refusal = "batched GraphQL requests are not served: send one operation per request"
            if refusal:
                status = 413 if "larger" in refusal else 400
                await JSONResponse({"error": refusal}, status_code=status)(scope, receive, framed_send)
                return
            receive = _replay(body)
        await self.app(scope, receive, framed_send)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, str]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", "the client went away"
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", f"the request is larger than {limit} bytes"
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), ""


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
