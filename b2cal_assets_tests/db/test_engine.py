"""Engines and sessions: the default URL, engine settings per kind, transactions, and bad URLs."""

import pytest
from sqlalchemy.orm import Session

from b2cal_assets.db.engine import (
    database_url,
    dialect_name,
    display_url,
    make_engine,
    parse_url,
    session_scope,
)
from b2cal_assets.db.errors import BadDatabaseURL
from b2cal_assets.db.repo import audit, processings
from b2cal_assets_tests.db.factories import make_processing


def test_default_url_is_sqlite_in_b2cal_home(b2cal_home, monkeypatch):
    assert database_url() == f"sqlite:///{b2cal_home / 'b2cal.db'}"
    monkeypatch.setenv("B2CAL_DATABASE_URL", "postgresql://u@h/db")
    assert database_url() == "postgresql://u@h/db"


def test_urls_get_the_installed_driver_and_hide_passwords():
    assert parse_url("mysql://u:secret@h/db").drivername == "mysql+pymysql"
    assert parse_url("mariadb://u@h/db").drivername == "mariadb+pymysql"
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg2"
    assert dialect_name("mariadb://u@h/db") == "mysql"
    assert "secret" not in display_url("mysql://u:secret@h/db")
    with pytest.raises(BadDatabaseURL, match="unsupported database kind 'oracle'"):
        parse_url("oracle://u@h/db")
    with pytest.raises(BadDatabaseURL, match="names no database"):
        parse_url("postgresql://u@h")


def test_engine_settings(db_engine):
    assert make_engine(db_engine.url) is db_engine  # one engine per URL
    with db_engine.connect() as c:
        kind = db_engine.dialect.name
        if kind == "sqlite":
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        elif kind in ("mysql", "mariadb"):
            assert c.get_isolation_level() == "READ COMMITTED"
            assert db_engine.pool._pre_ping
        else:
            assert c.get_isolation_level() == "READ COMMITTED"


def test_session_scope_commits_or_rolls_back_everything(db_engine):
    with session_scope(db_engine) as s:
        make_processing(s, "kept")
    with pytest.raises(RuntimeError), session_scope(db_engine) as s:
        make_processing(s, "lost", site="desy")
        audit.record_audit(s, "alice", "create_processing", "lost")
        raise RuntimeError("a step failed half-way")
    with session_scope(db_engine, readonly=True) as s:
        assert [p.name for p in processings.list_processings(s)] == ["kept"]
        assert audit.list_audit(s) == []


def test_foreign_keys_are_enforced(db_engine):
    from sqlalchemy.exc import IntegrityError

    from b2cal_assets.db.models import Attempt

    with Session(db_engine) as s:
        s.add(Attempt(processing_id=999, calibration="x", number=1, submitted_by="a"))
        with pytest.raises(IntegrityError):
            s.flush()


def test_work_is_tried_again_while_the_database_is_unreachable_and_then_given_up():
    from sqlalchemy.exc import OperationalError

    from b2cal_assets.db.engine import retry_while_unreachable

    down = OperationalError("SELECT 1", {}, ConnectionRefusedError("Connection refused"))
    calls, warnings = [], []

    def comes_back() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise down
        return "recorded"

    assert retry_while_unreachable(comes_back, what="recording", on_retry=warnings.append) == "recorded"
    assert len(calls) == 3 and len(warnings) == 2 and "while recording" in warnings[0]

    def never() -> None:
        raise down

    with pytest.raises(OperationalError):
        retry_while_unreachable(never, what="recording", budget_s=0.2)

    def wrong() -> None:  # not a connection problem: no second try
        calls.append(1)
        raise ValueError("a bug")

    calls.clear()
    with pytest.raises(ValueError):
        retry_while_unreachable(wrong, what="recording")
    assert len(calls) == 1


def test_the_retry_budget_comes_from_the_environment(monkeypatch):
    from b2cal_assets.db.engine import db_retry_budget_s

    monkeypatch.setenv("B2CAL_DB_RETRY_S", "12.5")
    assert db_retry_budget_s() == 12.5
    for bad in ("inf", "-1", "soon"):
        monkeypatch.setenv("B2CAL_DB_RETRY_S", bad)
        with pytest.raises(ValueError, match="B2CAL_DB_RETRY_S"):
            db_retry_budget_s()
