"""Errors of the calibration database, each with a message a user can act on.

The CLI turns every ``DatabaseError`` into a one-line ``UserError``; Dagster code lets them fail the step
with the same message.
"""

from __future__ import annotations

from collections.abc import Iterable


class DatabaseError(Exception):
    """Base class: something about the calibration database the user has to fix or know."""


class BadDatabaseURL(DatabaseError):
    """The URL cannot be parsed or names a database kind b2cal does not support."""


class DatabaseUnreachable(DatabaseError):
    """The server does not answer, refuses the login, or the database does not exist."""


class SchemaError(DatabaseError):
    """The database's Alembic revision does not match this version of b2cal."""


class SchemaMissing(SchemaError):
    """The database has no b2cal tables yet."""


class SchemaBehind(SchemaError):
    """The database is at an older revision: ``b2cal db upgrade`` brings it to the code's."""


class UnknownRevision(SchemaError):
    """The database is at a revision this code does not know (migrated by a newer b2cal, or foreign)."""


class NotFound(DatabaseError):
    """A named row does not exist; the message lists the names that do."""

    @staticmethod
    def listing(kind: str, name: str, known: Iterable[str], hint: str = "") -> NotFound:
        names = sorted(known)
        shown = ", ".join(names[:20]) + (f" (and {len(names) - 20} more)" if len(names) > 20 else "")
        message = f"no {kind} named {name!r}; known: {shown or 'none'}"
        return NotFound(message + (f". {hint}" if hint else ""))


class AlreadyExists(DatabaseError):
    """A row with that unique name already exists."""


class InvalidValue(DatabaseError):
    """A value that the database would accept but that means nothing to b2cal (unknown state, bad IoV)."""


class ConcurrentUpdate(DatabaseError):
    """Someone else changed the row between reading and writing it; reload and try again."""


class BackupError(DatabaseError):
    """A backup or restore could not be made (missing tool, tool failed, unreadable archive)."""


class RestoreRefused(BackupError):
    """Restoring would overwrite a database that holds data, and ``force`` was not given."""
