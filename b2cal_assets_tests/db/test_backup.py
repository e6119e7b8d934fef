"""Backups and restores with each engine's own tool: the restore drill, consistency under a busy writer,
retention, and refusing to overwrite data without --force."""

import io
import json
import tarfile
import threading

import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.orm import Session

from b2cal_assets.db import migrate
from b2cal_assets.db.backup import (
    backup_database,
    list_backups,
    read_manifest,
    restore_database,
    table_checksums,
)
from b2cal_assets.db.engine import dialect_name, ensure_schema, session_scope
from b2cal_assets.db.errors import BackupError, InvalidValue, RestoreRefused
from b2cal_assets.db.models import AuditEntry
from b2cal_assets.db.repo import attempts, audit, calibrations, payloads, signoffs
from b2cal_assets_tests.db.factories import make_processing, register_runs
from b2cal_assets_tests.fixtures.databases import temporary_database


def fill(engine) -> None:
    with session_scope(engine) as s:
        make_processing(s, "bucket_7", iov=(7, 0, 7, -1))
        register_runs(s, [(7, r) for r in range(1, 6)], site="kek")
        calibrations.ensure_calibrations(s, "bucket_7", {"beam_spot": "alice", "ecl_energy": "bob"})
        attempt = attempts.create_attempt(
            s, "bucket_7", "beam_spot", "alice", {"iterations": 2}, {"max_files": 3}
        )
        attempts.finish_attempt(s, attempt.id, "finished", iterations=2)
        payloads.record_payloads(
            s,
            "bucket_7",
            "beam_spot",
            attempt.id,
            [("BeamSpot", "0" * 32, (7, 0, 7, -1), "/p/BeamSpot_rev_1.root")],
        )
        signoffs.record_signoff(s, "bucket_7", "beam_spot", "accept", "alice", comment="fine ünïcödé")
        audit.record_audit(
            s, "alice", "signoff_accept", "bucket_7", "beam_spot", {"comment": "fine", "n": 1.5}
        )


def drop_everything(engine) -> None:
    metadata = MetaData()
    with engine.begin() as connection:
        metadata.reflect(connection)
        metadata.drop_all(connection)


def test_restore_drill_gives_back_every_row_and_payload(db_engine, db_url, tmp_path):
    fill(db_engine)
    payload_dir = tmp_path / "payloads"
    (payload_dir / "bucket_7" / "beam_spot").mkdir(parents=True)
    (payload_dir / "bucket_7" / "beam_spot" / "BeamSpot_rev_1.root").write_bytes(b"\x00payload\xff")
    before = table_checksums(db_engine)
    assert before["catalog_file"][0] == 5 and before["alembic_version"][0] == 1

    result = backup_database(db_url, tmp_path / "backups", retention=3, payload_dir=payload_dir)
    assert result.path.name.endswith(f"-{dialect_name(db_url)}.tar.gz") and result.payloads_included
    assert result.revision == read_manifest(result.path)["revision"] == migrate.head_revision()

    drop_everything(db_engine)
    (payload_dir / "bucket_7" / "beam_spot" / "BeamSpot_rev_1.root").unlink()
    restored = restore_database(db_url, result.path)

    assert table_checksums(db_engine) == before
    assert (payload_dir / "bucket_7" / "beam_spot" / "BeamSpot_rev_1.root").read_bytes() == b"\x00payload\xff"
    assert restored.revision == result.revision and restored.tables == len(before)
    with Session(db_engine) as s:  # the ORM reads the restored rows as before
        assert [p.name for p in payloads.current_payloads(s, "bucket_7")] == ["BeamSpot"]


def test_restore_over_data_needs_force_and_keeps_a_safety_copy(db_engine, db_url, tmp_path):
    fill(db_engine)
    first = backup_database(db_url, tmp_path / "backups")
    with session_scope(db_engine) as s:
        audit.record_audit(s, "bob", "after_the_backup")
    with_extra = table_checksums(db_engine)

    with pytest.raises(RestoreRefused, match=r"holds \d+ tables.*--force"):
        restore_database(db_url, first.path)
    assert table_checksums(db_engine) == with_extra  # nothing touched

    result = restore_database(db_url, first.path, force=True, safety_backup_dir=tmp_path / "safety")
    with Session(db_engine) as s:
        assert [e.action for e in audit.list_audit(s)] == ["signoff_accept"]
    assert result.safety_backup is not None and result.safety_backup.exists()
    # the safety copy holds the state before the restore, the extra entry included
    restore_database(db_url, result.safety_backup, force=True)
    assert table_checksums(db_engine) == with_extra


def test_backup_while_a_writer_is_busy_is_consistent_and_does_not_block_it(db_engine, db_url, tmp_path):
    """One writer holds an open transaction during the whole backup, another commits pairs of rows."""
    fill(db_engine)
    in_transaction, backup_done, stop = threading.Event(), threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def holder():
        with Session(db_engine) as s:
            audit.record_audit(s, "holder", "uncommitted_during_backup")
            in_transaction.set()
            outcome["holder_saw_backup_finish"] = backup_done.wait(timeout=120)
            s.commit()

    def pairs():
        batch = 0
        while not stop.is_set():
            batch += 1
            with session_scope(db_engine) as s:
                audit.record_audit(s, "writer", "pair", details={"batch": batch})
                audit.record_audit(s, "writer", "pair", details={"batch": batch})
        outcome["pairs_committed"] = batch

    threads = [threading.Thread(target=holder), threading.Thread(target=pairs)]
    for thread in threads:
        thread.start()
    try:
        assert in_transaction.wait(timeout=60)
        result = backup_database(db_url, tmp_path / "backups")
    finally:
        backup_done.set()
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert outcome["holder_saw_backup_finish"] is True  # the backup finished while the writer held its lock

    restore_database(db_url, result.path, force=True)
    with Session(db_engine) as s:
        actions = [e.action for e in s.scalars(select(AuditEntry))]
        pairs_rows = [
            e.details["batch"] for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "pair"))
        ]
    assert "uncommitted_during_backup" not in actions
    assert all(pairs_rows.count(b) == 2 for b in set(pairs_rows))  # no half-written pair
    assert len(pairs_rows) <= 2 * int(outcome["pairs_committed"])


@pytest.fixture
def sqlite_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'cal.db'}"
    ensure_schema(url)
    return url


def test_retention_keeps_the_newest(sqlite_db, tmp_path):
    made = [backup_database(sqlite_db, tmp_path / "b", retention=2).path for _ in range(4)]
    assert list_backups(tmp_path / "b") == [made[3], made[2]]
    with pytest.raises(InvalidValue, match="at least 1"):
        backup_database(sqlite_db, tmp_path / "b", retention=0)


def test_missing_payload_dir_is_noted(sqlite_db, tmp_path):
    result = backup_database(sqlite_db, tmp_path / "b", payload_dir=tmp_path / "nope")
    assert not result.payloads_included and "does not exist" in result.note
    no_dir = backup_database(sqlite_db, tmp_path / "b")
    assert "not included" in no_dir.note


def test_restore_refuses_another_engines_backup_and_junk(sqlite_db, tmp_path):
    fake = tmp_path / "b2cal-backup-20260101T000000000000Z-postgresql.tar.gz"
    with tarfile.open(fake, "w:gz") as tar:
        data = json.dumps({"engine": "postgresql", "dump": "database.sql", "payloads": False}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(BackupError, match="backup of a postgresql database; it cannot be restored into"):
        restore_database(sqlite_db, fake, force=True)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    with pytest.raises(BackupError, match="not a b2cal backup archive"):
        restore_database(sqlite_db, junk)
    with pytest.raises(BackupError, match="no backup archive at"):
        restore_database(sqlite_db, tmp_path / "missing.tar.gz")


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
def test_missing_tool_is_a_clear_error(kind, tmp_path, monkeypatch):
    with temporary_database(kind, tmp_path) as url:
        ensure_schema(url)
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(BackupError, match="not found on PATH: install the database client tools"):
            backup_database(url, tmp_path / "b")
        assert not list((tmp_path / "b").glob("*"))  # no partial archive left behind


def test_a_python_without_extraction_filters_restores_and_refuses_an_escaping_member(
    sqlite_db, tmp_path, monkeypatch
):
    """Debian bookworm's Python 3.11.2 (the image's) has no ``filter=``: the same members pass, no more."""
    monkeypatch.delattr(tarfile, "data_filter")
    archive = backup_database(sqlite_db, tmp_path / "b", payload_dir=None).path
    assert restore_database(sqlite_db, archive, force=True).engine == "sqlite"
    evil = tmp_path / "b2cal-backup-20260101T000000000000Z-sqlite.tar.gz"
    with tarfile.open(archive, "r:gz") as source, tarfile.open(evil, "w:gz") as tar:
        for member in source.getmembers():
            tar.addfile(member, source.extractfile(member) if member.isfile() else None)
        escaping = tarfile.TarInfo("../outside.txt")
        escaping.size = 1
        tar.addfile(escaping, io.BytesIO(b"x"))
    with pytest.raises(BackupError, match=r"never does: '\.\./outside\.txt' is not a plain file"):
        restore_database(sqlite_db, evil, force=True)
    assert not (tmp_path / "outside.txt").exists()
