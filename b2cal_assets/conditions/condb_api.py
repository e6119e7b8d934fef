"""The conditions database's REST API v2 as records and refusals, without the HTTP client.

Kept apart from ``condb_client.py`` so the loop and the commands that only read an upload's state
do not import the HTTP library.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from b2cal_assets.domain.iov import IoV

__all__ = [
    "CondbAnswerError",
    "CondbError",
    "CondbRefused",
    "CondbUnavailable",
    "GlobalTag",
    "RemoteIoV",
    "RemotePayload",
    "TagState",
]


class TagState(StrEnum):
    OPEN = "OPEN"
    TESTING = "TESTING"
    VALIDATED = "VALIDATED"
    PUBLISHED = "PUBLISHED"
    RUNNING = "RUNNING"
    INVALID = "INVALID"


class CondbError(Exception):
    """Anything the conditions database did not do."""


class CondbUnavailable(CondbError):
    """The server cannot be reached or answers 5xx: try again later."""


class CondbAnswerError(CondbError):
    """The server answered something this client does not understand (not the API v2 it expects)."""


class CondbRefused(CondbError):
    """The server refused the request (4xx); ``reason`` is its own words."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class GlobalTag:
    id: int
    name: str
    state: TagState
    description: str = ""


@dataclass(frozen=True)
class RemotePayload:
    id: int
    name: str
    checksum: str
    revision: int


@dataclass(frozen=True)
class RemoteIoV:
    id: int
    payload: RemotePayload
    iov: IoV
