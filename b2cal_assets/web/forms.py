"""Reading the POST forms of the calibration pages: a capped body, the CSRF token, and typed fields.

Every problem is a ``FormRejected`` whose message a person can act on; nothing here touches the
calibration database.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message

from b2cal_assets.web.sessions import CSRF_FIELD, SessionCodec

FORM_EXPIRED = "The form expired or did not come from this site; reload the page and try again."
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # headers and the small fields next to an uploaded file
MAX_TEXT_FIELD_BYTES = 256 * 1024


class FormRejected(Exception):
    """A form that cannot be acted on; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class _BodyTooLarge(Exception):
    pass


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


async def read_form(request: Request, *, max_bytes: int, too_large: str = "") -> FormData:
    """The form, refusing a body larger than ``max_bytes`` while it streams in (no Content-Length trust).

    ``too_large`` is the refusal to show (default: the request's size against ``max_bytes``).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise FormRejected(
            too_large
            or f"the request is {human_bytes(int(declared))}, more than the limit of {human_bytes(max_bytes)}",
            413,
        )
    received = 0

    async def capped_receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise _BodyTooLarge
        return message

    capped = Request(request.scope, capped_receive)
    try:
        return await capped.form(max_files=1, max_fields=50, max_part_size=MAX_TEXT_FIELD_BYTES)
    except _BodyTooLarge:
        raise FormRejected(
            too_large or f"the request is larger than the limit of {human_bytes(max_bytes)}", 413
        ) from None
    except HTTPException as exc:  # malformed multipart, too many fields, a text field too long
        raise FormRejected(f"the form could not be read: {exc.detail}") from None


def check_csrf(codec: SessionCodec, request: Request, form: FormData) -> None:
    if not codec.csrf_valid(request, text_field(form, CSRF_FIELD)):
        raise FormRejected(FORM_EXPIRED)


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def file_field(form: FormData, name: str) -> UploadFile:
    value = form.get(name)
    if not isinstance(value, UploadFile) or not value.filename:
        raise FormRejected("no file was chosen: pick the archive (.tar.gz or .zip) to upload")
    return value


def json_object_field(form: FormData, name: str) -> dict[str, Any]:
    """A JSON object typed into a textarea (blank means ``{}``)."""
    text = text_field(form, name).strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormRejected(
            f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            'write an object such as {"scale": 1.5}'
        ) from None
    if not isinstance(value, dict):
        raise FormRejected(
            f'{name} must be a JSON object such as {{"scale": 1.5}}, not {type(value).__name__}'
        )
    return value


def optional_int_field(form: FormData, name: str) -> int | None:
    text = text_field(form, name).strip()
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise FormRejected(f"{name} must be a whole number of at least 1 (or left empty), not {text!r}")
    return int(text)


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.\-]")


def safe_filename(name: str, default: str = "upload.tar.gz") -> str:
    """The last path component of a browser-given file name, reduced to harmless characters."""
    base = re.split(r"[\\/]", name)[-1].strip()
    cleaned = _UNSAFE_FILENAME.sub("_", base).lstrip(".")[:128]
    return cleaned or default
