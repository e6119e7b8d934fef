"""``b2cal db`` and ``b2cal audit``: what an operator types, on every engine, and what bad input gives."""

import itertools
import json

import pytest

from b2cal_assets.cli import main
from b2cal_assets.db import migrate
from b2cal_assets.db.backup import list_backups, table_checksums
from b2cal_assets.db.engine import create_database_engine, make_engine, session_scope
from b2cal_assets.db.repo import audit
from b2cal_assets_tests.db.factories import make_processing


def b2cal(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_operator_workflow(db_url, b2cal_home, capsys):
    code, out, _ = b2cal(capsys, "db", "current", "--database-url", db_url)
    assert code == 0 and "no b2cal tables yet: run `b2cal db upgrade`" in out

    code, out, _ = b2cal(capsys, "db", "upgrade", "--database-url", db_url)
    assert code == 0 and f"base -> {migrate.head_revision()}" in out
    assert not (b2cal_home / "backups").exists()  # nothing to back up in an empty database

    with session_scope(make_engine(db_url)) as s:
        make_processing(s, "p")
        audit.record_audit(s, "alice", "create_processing", "p", details={"site": "kek"})
        audit.record_audit(s, "bob", "submit", "p", "beam_spot")

    code, out, _ = b2cal(capsys, "db", "downgrade", "0001", "--database-url", db_url)
    assert code == 0 and f"{migrate.head_revision()} -> 0001" in out
    backup_line = next(line for line in out.splitlines() if line.startswith("backup before the downgrade: "))
    saved = backup_line.split(": ", 1)[1].split(" ")[0]
    assert saved.startswith(str(b2cal_home / "backups"))

    code, out, _ = b2cal(capsys, "db", "current", "--database-url", db_url)
    assert f"at revision 0001, the code is at {migrate.head_revision()}" in out
    code, _, err = b2cal(capsys, "audit", "--database-url", db_url)
    assert code == 2 and "run `b2cal db upgrade`" in err and "Traceback" not in err

    code, out, _ = b2cal(capsys, "db", "upgrade", "--database-url", db_url)
    assert code == 0 and "backup before the upgrade" in out
    code, _, err = b2cal(capsys, "db", "restore", saved, "--database-url", db_url)
    assert code == 2 and "--force" in err
    code, out, _ = b2cal(capsys, "db", "restore", saved, "--force", "--database-url", db_url)
    assert code == 0 and "the database as it was is saved in" in out

    code, out, _ = b2cal(capsys, "audit", "--user", "alice", "--json", "--database-url", db_url)
    assert code == 0
    assert [(e["user"], e["action"], e["details"]) for e in json.loads(out)] == [
        ("alice", "create_processing", {"site": "kek"})
    ]
    code, out, _ = b2cal(capsys, "audit", "--processing", "p", "--limit", "5", "--database-url", db_url)
    assert out.splitlines()[0].split()[:3] == ["AT", "USER", "ACTION"] and "submit" in out.splitlines()[2]


def test_backup_command_keeps_the_newest_and_includes_payloads(b2cal_home, capsys):
    (b2cal_home / "payloads" / "p").mkdir(parents=True)
    (b2cal_home / "payloads" / "p" / "dbstore_X_rev_1.root").write_bytes(b"x")
    assert b2cal(capsys, "db", "upgrade")[0] == 0
    for _ in range(3):
        code, out, _ = b2cal(capsys, "db", "backup", "--keep", "2")
        assert code == 0 and "payload files from" in out
    assert "removed old backup" in out
    assert len(list_backups(b2cal_home / "backups")) == 2
    code, out, _ = b2cal(capsys, "db", "backup", "--no-payloads", "--dir", b2cal_home / "elsewhere")
    assert "NOTE: payload files not included" in out
    assert len(list_backups(b2cal_home / "elsewhere")) == 1


def test_history_lists_the_migrations(capsys):
    code, out, _ = b2cal(capsys, "db", "history")
    assert code == 0
    revisions = [r.revision for r in migrate.history()]
    expected = [f"base -> {revisions[0]}"] + [
        f"{older} -> {newer}" for older, newer in itertools.pairwise(revisions)
    ]
    expected[-1] += " (head)"
    assert [line for line in out.splitlines() if line.startswith(tuple(expected))] == out.splitlines()
    assert len(out.splitlines()) == len(revisions)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+pymysql://root@127.0.0.1:1/b2cal", "cannot connect to the calibration database"),
        ("postgresql://postgres@127.0.0.1:1/b2cal", "cannot connect to the calibration database"),
        ("oracle://scott@db/b2cal", "unsupported database kind 'oracle'"),
        ("not a url", "cannot parse database URL"),
        ("mysql://root@127.0.0.1:3306", "names no database"),
    ],
)
def test_bad_database_urls_give_one_line_and_write_nothing(url, message, b2cal_home, capsys):
    for argv in (["db", "upgrade"], ["db", "current"], ["db", "backup"], ["audit"]):
        code, _out, err = b2cal(capsys, *argv, "--database-url", url)
        assert code == 2, argv
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(b2cal_home.iterdir()) == []


def test_database_ahead_of_the_code_is_refused(db_url, b2cal_home, capsys):
    assert b2cal(capsys, "db", "upgrade", "--database-url", db_url)[0] == 0
    engine = create_database_engine(db_url)
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    before = table_checksums(engine)
    engine.dispose()
    for argv in (["db", "upgrade"], ["db", "downgrade", "0001"], ["db", "current"], ["audit"]):
        code, _, err = b2cal(capsys, *argv, "--database-url", db_url)
        assert code == 2 and "revision '0099', which this b2cal does not know" in err, argv
    engine = create_database_engine(db_url)
    assert table_checksums(engine) == before
    engine.dispose()
    assert not (b2cal_home / "backups").exists()


def test_unknown_target_revision(b2cal_home, capsys):
    code, _, err = b2cal(capsys, "db", "downgrade", "0042")
    known = ", ".join(r.revision for r in migrate.history())
    assert code == 2 and f"unknown revision '0042': known revisions are {known}, head and base" in err


def test_restore_of_a_missing_file(b2cal_home, capsys):
    code, _, err = b2cal(capsys, "db", "restore", b2cal_home / "nope.tar.gz")
    assert code == 2 and "no backup archive at" in err


def _with_damaged_database(archive, into):
    """The same archive, its manifest intact, with the database inside overwritten by junk."""
    import io
    import tarfile

    damaged = into / archive.name
    with tarfile.open(archive, "r:gz") as src, tarfile.open(damaged, "w:gz") as dst:
        manifest = json.load(src.extractfile("manifest.json"))
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == manifest["dump"]:
                data = b"SQLite format 3\0" + b"\xff" * 5000  # a header, then garbage
                member.size = len(data)
            dst.addfile(member, None if data is None else io.BytesIO(data))
    return damaged


def test_restore_of_a_damaged_inner_database_refuses_and_leaves_nothing(b2cal_home, capsys, tmp_path):
    db_file = b2cal_home / "b2cal.db"
    assert b2cal(capsys, "db", "upgrade")[0] == 0
    with session_scope(make_engine(f"sqlite:///{db_file}")) as s:
        make_processing(s, "p")
    assert b2cal(capsys, "db", "backup")[0] == 0
    (good,) = list_backups(b2cal_home / "backups")
    (tmp_path / "damaged").mkdir()
    damaged = _with_damaged_database(good, tmp_path / "damaged")
    before = db_file.read_bytes()
    for _try in range(2):
        code, out, err = b2cal(capsys, "db", "restore", damaged, "--force")
        assert code == 2, out
        assert len(err.strip().splitlines()) == 1 and "the database inside" in err and "damaged" in err
    assert db_file.read_bytes() == before
    assert list_backups(b2cal_home / "backups") == [good]  # no extra safety backup
    db_file.unlink()
    code, _out, err = b2cal(capsys, "db", "restore", damaged)
    assert code == 2 and "damaged" in err
    assert not db_file.exists()  # no empty b2cal.db left behind
