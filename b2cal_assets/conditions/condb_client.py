"""A client of the conditions database's REST API v2, as the framework's ``b2conditionsdb`` tool uses it.

Facts from the framework's public ``conditions_db`` package (see ``reference/basf2-prompt-contract.md``):
every request goes to ``<base>/v2/<path>`` with ``Accept: application/json``; an error answer is JSON
``{"code", "reason", "message"}``; a global tag is ``{"globalTagId", "name", "globalTagStatus":
{"name"}}``; ``POST checkPayloads`` takes ``[{"name", "checksum"}]`` and answers the payloads already
stored (``payloadId``, ``checksum``, ``revision``, ``basf2Module.name``); a payload is uploaded as a
``multipart/mixed`` body of the file and a JSON part with its md5 ``checksum``; an IoV is created with
``POST globalTagPayload/<tagId>,<payloadId>/payloadIov/<e1>,<r1>,<e2>,<r2>``.

Connection failures, timeouts and 5xx answers are ``CondbUnavailable`` (retried with backoff, then
given up: the caller tries again later); a 4xx answer is ``CondbRefused`` with the server's reason.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from b2cal_assets.conditions.condb_api import (
    CondbAnswerError,
    CondbError,
    CondbRefused,
    CondbUnavailable,
    GlobalTag,
    RemoteIoV,
    RemotePayload,
    TagState,
)
from b2cal_assets.domain.iov import IoV
from b2cal_assets.settings import Settings, settings

__all__ = [
    "CondbAnswerError",
    "CondbError",
    "CondbRefused",
    "CondbUnavailable",
    "ConditionsDbClient",
    "GlobalTag",
    "RemoteIoV",
    "RemotePayload",
    "TagState",
]


P = ParamSpec("P")
R = TypeVar("R")


def _understood(method: Callable[P, R]) -> Callable[P, R]:
    """An answer missing the API's fields is ``CondbAnswerError``, not a ``KeyError`` deep in the loop."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            raise CondbAnswerError(
                f"the conditions database's answer to {method.__name__} is not what its API v2 gives: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    return wrapper


def _name(text: str) -> str:
    """Names go into the URL escaped, slashes included (as the framework's ``encode_name``)."""
    return quote(text, safe="")


def _tag(data: dict[str, Any]) -> GlobalTag:
    return GlobalTag(
        int(data["globalTagId"]),
        str(data["name"]),
        TagState(data["globalTagStatus"]["name"]),
        str(data.get("description") or ""),
    )


def _payload(data: dict[str, Any]) -> RemotePayload:
    return RemotePayload(
        int(data["payloadId"]), str(data["basf2Module"]["name"]), str(data["checksum"]), int(data["revision"])
    )


def multipart_mixed(parts: Iterable[tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """The ``multipart/mixed`` body the server takes for a payload: (part name, bytes, content type)."""
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, data, content_type in parts:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
        )
        chunks.append(data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}"


class ConditionsDbClient:
    """One conditions database; ``base_url`` is the REST root, e.g. ``https://host/b2s/rest/``.

    ``user`` + ``token`` authenticate with HTTP basic auth (the framework's way); a token alone is sent
    as ``Authorization: Bearer``. ``attempts`` tries per request while the server is unavailable.
    """

    def __init__(
        self,
        base_url: str,
        *,
        user: str = "",
        token: str = "",
        timeout_s: float = 30.0,
        attempts: int = 3,
        backoff_s: float = 1.0,
        verify: bool | str = True,
    ) -> None:
        headers = {"Accept": "application/json", "Cache-Control": "no-cache"}
        auth: httpx.BasicAuth | None = None
        if user:
            auth = httpx.BasicAuth(user, token)
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/") + "/v2/"
        self._http = httpx.Client(headers=headers, auth=auth, timeout=timeout_s, verify=verify)
        self._attempts = max(1, attempts)
        self._backoff_s = backoff_s

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConditionsDbClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport -------------------------------------------------------------------------------
    def _once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, self.base_url + path, **kwargs)
        except httpx.TransportError as exc:
            raise CondbUnavailable(f"conditions database {self.base_url} unreachable: {exc}") from None
        if response.status_code >= 500:
            raise CondbUnavailable(
                f"conditions database {self.base_url} answered {response.status_code} to {method} {path}"
            )
        if response.status_code >= 300:
            raise CondbRefused(response.status_code, _reason(response))
        return response

    def request(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> httpx.Response:
        """One request, tried ``attempts`` times with exponential backoff while the server is unavailable.

        ``retry=False`` for a request that must not be sent twice blindly (a payload or IoV creation:
        the caller checks what is there before trying again).
        """
        if not retry:
            return self._once(method, path, **kwargs)
        retrying = Retrying(
            retry=retry_if_exception_type(CondbUnavailable),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff_s, max=30),
            reraise=True,
        )
        return retrying(self._once, method, path, **kwargs)

    def ping(self) -> None:
        """Raises ``CondbUnavailable`` when the server does not answer (the framework's HEAD check)."""
        self.request("HEAD", "globalTags")

    # --- global tags -----------------------------------------------------------------------------
    @_understood
    def global_tags(self) -> list[GlobalTag]:
        return [_tag(t) for t in self.request("GET", "globalTags").json()]

    @_understood
    def global_tag(self, name: str) -> GlobalTag | None:
        """The tag, or None when the server has no tag of that name."""
        try:
            return _tag(self.request("GET", f"globalTag/{_name(name)}").json())
        except CondbRefused as exc:
            if exc.status == 404:
                return None
            raise

    @_understood
    def create_global_tag(self, name: str, description: str, user: str) -> GlobalTag:
        """A new tag (type DEV), OPEN."""
        body = {"name": name, "description": description, "modifiedBy": user, "isDefault": False}
        return _tag(self.request("POST", "globalTag/DEV", json=body, retry=False).json())

    def set_global_tag_state(self, name: str, state: TagState | str) -> None:
        self.request("PUT", f"globalTag/{_name(name)}/updateGlobalTagStatus/{TagState(state).value}")

    # --- payloads and IoVs -----------------------------------------------------------------------
    @_understood
    def check_payloads(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RemotePayload]:
        """The payloads already stored, by (name, md5 checksum)."""
        query = [{"name": name, "checksum": checksum} for name, checksum in keys]
        if not query:
            return {}
        found = [_payload(p) for p in self.request("POST", "checkPayloads", json=query).json()]
        return {(p.name, p.checksum): p for p in found}

    @_understood
    def create_payload(self, name: str, file: Path, checksum: str) -> RemotePayload:
        """Upload one payload file; the server checks the bytes against ``checksum`` and refuses a mismatch."""
        body, content_type = multipart_mixed(
            [
                (file.name, file.read_bytes(), "application/x-root"),
                ("json", json.dumps({"checksum": checksum, "isDefault": False}).encode(), "application/json"),
            ]
        )
        response = self.request(
            "POST",
            f"package/dbstore/module/{_name(name)}/payload",
            content=body,
            headers={"Content-Type": content_type},
            retry=False,
        )
        data = response.json()
        return RemotePayload(int(data["payloadId"]), name, checksum, int(data.get("revision", 0)))

    @_understood
    def create_iov(self, tag_id: int, payload_id: int, iov: IoV) -> int:
        """Add ``iov`` of the payload to the tag; the new payload IoV's id."""
        e1, r1, e2, r2 = (int(v) for v in iov)
        path = f"globalTagPayload/{int(tag_id)},{int(payload_id)}/payloadIov/{e1},{r1},{e2},{r2}"
        return int(self.request("POST", path, retry=False).json()["payloadIovId"])

    @_understood
    def tag_iovs(self, name: str) -> list[RemoteIoV]:
        """Every payload IoV of the tag (``globalTagPayloads``)."""
        result = []
        for entry in self.request("GET", f"globalTag/{_name(name)}/globalTagPayloads").json():
            payload = _payload(entry["payloadId"])
            for iov in entry["payloadIovs"]:
                result.append(
                    RemoteIoV(
                        int(iov["payloadIovId"]),
                        payload,
                        IoV(int(iov["expStart"]), int(iov["runStart"]), int(iov["expEnd"]), int(iov["runEnd"])),
                    )
                )
        return result


def _reason(response: httpx.Response) -> str:
    """The server's own words for a refusal: ``reason: message`` from its JSON answer, else the text."""
    try:
        data = response.json()
    except ValueError:
        return f"{response.status_code}: {response.text.strip()[:200]}"
    if not isinstance(data, dict):
        return f"{response.status_code}: {str(data)[:200]}"
    reason = str(data.get("reason") or response.reason_phrase)
    message = str(data.get("message") or "").strip()
    return f"{reason}: {message}" if message else reason


def build_client(
    url: str, *, user: str, token: str, timeout_s: float, attempts: int, backoff_s: float
) -> ConditionsDbClient | None:
    """The one way a client is made, from the settings (the CLI) or the Dagster resource: None without
    a URL (no conditions database configured: payloads stay in the local staging tag)."""
    if not url:
        return None
    return ConditionsDbClient(
        url, user=user, token=token, timeout_s=timeout_s, attempts=attempts, backoff_s=backoff_s
    )


def client_from_settings(current: Settings | None = None) -> ConditionsDbClient | None:
    """The client of ``B2CAL_CONDB_URL`` (with ``_USER``, ``_TOKEN``, ``_TIMEOUT_S``, ``_ATTEMPTS``,
    ``_BACKOFF_S``), or None when no conditions database is configured (the CLI's way in)."""
    current = settings() if current is None else current
    return build_client(
        current.condb_url,
        user=current.condb_user,
        token=current.condb_token,
        timeout_s=current.condb_timeout_s,
        attempts=current.condb_attempts,
        backoff_s=current.condb_backoff_s,
    )
