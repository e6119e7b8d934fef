"""``b2cal db``: migrate the calibration database, see where it stands, back it up and restore it."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from b2cal_assets import home
from b2cal_assets.cli import UserError
from b2cal_assets.cli.common import add_db_argument, database_url, number_type
from b2cal_assets.db import migrate
from b2cal_assets.db.backup import backup_database, restore_database
from b2cal_assets.db.engine import display_url
from b2cal_assets.db.errors import DatabaseError, UnknownRevision
from b2cal_assets.db.migrate import head_revision, history, schema_status


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """The database library's refusals as one-line user errors."""
    try:
        yield
    except DatabaseError as exc:
        raise UserError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="migrate, back up and restore the calibration database")
    sub = parser.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    sub.required = True

    upgrade = sub.add_parser("upgrade", help="migrate to the newest schema (a backup is taken first)")
    upgrade.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    downgrade = sub.add_parser("downgrade", help="migrate back to REV (a backup is taken first)")
    downgrade.add_argument("revision", help="target revision, or 'base' for an empty database")
    for command in (upgrade, downgrade):
        command.add_argument("--backup-dir", type=Path, default=None, help="default: $B2CAL_HOME/backups")
        command.add_argument("--no-backup", action="store_true", help="skip the backup (not recommended)")
        add_db_argument(command)
    upgrade.set_defaults(func=upgrade_command)
    downgrade.set_defaults(func=downgrade_command)

    current = sub.add_parser("current", help="the database's revision and whether it matches the code")
    add_db_argument(current)
    current.set_defaults(func=current_command)
    history = sub.add_parser("history", help="the migrations, oldest first")
    history.set_defaults(func=history_command)

    backup = sub.add_parser(
        "backup",
        help="write a compressed, timestamped backup (database dump + payload files)",
        description="Uses mariadb-dump --single-transaction, pg_dump or SQLite's online backup; writers "
        "are not blocked. Keeps the newest --keep backups in the directory.",
    )
    backup.add_argument("--dir", type=Path, default=None, help="default: $B2CAL_HOME/backups")
    backup.add_argument(
        "--keep",
        type=number_type(minimum=1, integer=True),
        default=14,
        help="how many backups to keep (default: 14)",
    )
    payloads = backup.add_mutually_exclusive_group()
    payloads.add_argument("--payload-dir", type=Path, default=None, help="default: $B2CAL_HOME/payloads")
    payloads.add_argument("--no-payloads", action="store_true", help="back up the database only")
    add_db_argument(backup)
    backup.set_defaults(func=backup_command)

    restore = sub.add_parser("restore", help="replace the database (and payload files) with a backup")
    restore.add_argument("file", type=Path, help="a b2cal-backup-*.tar.gz archive")
    restore.add_argument(
        "--force", action="store_true", help="replace a database that holds data (it is backed up first)"
    )
    restore.add_argument(
        "--payload-dir", type=Path, default=None, help="default: where the backup took them from"
    )
    restore.add_argument(
        "--backup-dir", type=Path, default=None, help="for the safety backup; default $B2CAL_HOME/backups"
    )
    add_db_argument(restore)
    restore.set_defaults(func=restore_command)


def _backup_before(url: str, args: argparse.Namespace, what: str) -> None:
    if args.no_backup:
        print(f"no backup taken before the {what} (--no-backup)")
        return
    if schema_status(url).state == "missing":
        return  # an empty database: nothing to keep
    result = backup_database(url, args.backup_dir or home.backups_dir())
    print(
        f"backup before the {what}: {result.path} (payload files are not touched by migrations, not included)"
    )


def _migrate(args: argparse.Namespace, direction: str) -> int:
    url = database_url(args)
    with database_errors():
        before = migrate.schema_status(url)
        if before.state in ("unknown", "unversioned"):
            raise UnknownRevision(before.describe())
        target = migrate.resolve_revision(args.revision)
        resolved = migrate.head_revision() if target == "head" else (None if target == "base" else target)
        if before.current == resolved:
            print(f"{display_url(url)} is already at revision {before.current or 'base'}; nothing to do")
            return 0
        _backup_before(url, args, direction)
        after = getattr(migrate, direction)(url, target)
    print(f"{direction}d {display_url(url)}: {before.current or 'base'} -> {after.current or 'base'}")
    return 0


def upgrade_command(args: argparse.Namespace) -> int:
    return _migrate(args, "upgrade")


def downgrade_command(args: argparse.Namespace) -> int:
    return _migrate(args, "downgrade")


def current_command(args: argparse.Namespace) -> int:
    with database_errors():
        status = schema_status(database_url(args))
        if status.state in ("unknown", "unversioned"):
            raise UnknownRevision(status.describe())
    print(status.describe())
    return 0


def history_command(args: argparse.Namespace) -> int:
    with database_errors():
        for info in history():
            head = " (head)" if info.is_head else ""
            print(f"{info.down_revision or 'base'} -> {info.revision}{head}: {info.message.splitlines()[0]}")
    return 0


def backup_command(args: argparse.Namespace) -> int:
    payload_dir = None if args.no_payloads else (args.payload_dir or home.payloads_root())
    with database_errors():
        result = backup_database(
            database_url(args), args.dir or home.backups_dir(), retention=args.keep, payload_dir=payload_dir
        )
    size_mb = result.size_bytes / 1e6
    print(f"backup written: {result.path} ({size_mb:.1f} MB, revision {result.revision or 'none'})")
    if result.payloads_included:
        print(f"payload files from {result.payload_dir} are included")
    else:
        print(f"NOTE: {result.note}")
    for old in result.removed:
        print(f"removed old backup {old.name} (keeping the newest {args.keep})")
    return 0


def restore_command(args: argparse.Namespace) -> int:
    url = database_url(args)
    with database_errors():
        result = restore_database(
            url,
            args.file,
            force=args.force,
            payload_dir=args.payload_dir,
            safety_backup_dir=args.backup_dir or home.backups_dir(),
        )
    print(f"restored {display_url(url)} from {result.archive} (revision {result.revision or 'none'})")
    if result.payload_dir is not None:
        print(f"payload files restored into {result.payload_dir}")
    for note in result.notes:
        print(note)
    if result.revision and result.revision != head_revision():
        print("the restored database is older than this b2cal: run `b2cal db upgrade`")
    return 0
