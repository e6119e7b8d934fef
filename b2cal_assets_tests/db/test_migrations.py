"""Alembic migrations on every engine: they build exactly the models, go down and up again, and carry
data stored at an older revision forward."""

import itertools
import threading
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, MetaData, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from b2cal_assets.db import migrate
from b2cal_assets.db.engine import check_schema, create_database_engine, make_engine
from b2cal_assets.db.errors import SchemaBehind, SchemaMissing, UnknownRevision
from b2cal_assets.db.models import Base, ProcessingCalibration
from b2cal_assets.db.repo import payloads
from b2cal_assets.domain.states import CalibrationState


def _diff(url):
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            return compare_metadata(
                MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
            )
    finally:
        engine.dispose()


def _tables(url):
    engine = create_database_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_models(db_url):
    migrate.upgrade(db_url)
    assert _diff(db_url) == []
    assert _tables(db_url) == set(Base.metadata.tables)


def test_upgrade_downgrade_upgrade(db_url):
    assert migrate.upgrade(db_url).current == migrate.head_revision()
    assert migrate.downgrade(db_url, "0001").current == "0001"
    assert "audit_entry" not in _tables(db_url) and "payload" in _tables(db_url)
    assert migrate.downgrade(db_url, "base").state == "missing"
    assert _tables(db_url) == set()
    assert migrate.upgrade(db_url).state == "current"
    assert _diff(db_url) == []


def test_data_stored_at_0001_survives_the_upgrade(db_url):
    migrate.upgrade(db_url, "0001")
    engine = create_database_engine(db_url)
    old = MetaData()
    old.reflect(engine)
    t = old.tables
    for table, column in [
        ("site", "backend_args"),
        ("processing", "global_tags"),
        ("attempt", "expert_config"),
        ("attempt", "job_config"),
    ]:
        t[table].c[column].type = JSON()  # MariaDB reflects JSON as LONGTEXT
    now = datetime(2026, 1, 1)

    def insert(c, table, **values):
        return c.execute(t[table].insert().values(**values)).inserted_primary_key[0]

    with engine.begin() as c:
        site = insert(
            c,
            "site",
            name="kek",
            backend="local",
            backend_args={},
            storage_root="",
            path_prefix="",
            signoff_policy="manual",
            hold_until_deadline=False,
        )
        proc = insert(
            c,
            "processing",
            name="p",
            kind="prompt",
            site_id=site,
            exp_low=1,
            run_low=0,
            exp_high=1,
            run_high=-1,
            global_tags=["gt"],
            window_hours=48.0,
            state="open",
            created_at=now,
            created_by="alice",
        )
        attempt = dict(
            processing_id=proc,
            calibration="beam_spot",
            submitted_by="alice",
            expert_config={},
            job_config={},
            state="finished",
            iterations=1,
            workdir="",
            dagster_run_id="",
            error="",
            submitted_at=now,
        )
        first, second = (insert(c, "attempt", number=n, **attempt) for n in (1, 2))
        payload = dict(
            processing_id=proc,
            checksum="a" * 32,
            exp_low=1,
            run_low=0,
            exp_high=1,
            run_high=-1,
            file="/f",
            created_at=now,
        )
        ids = [
            insert(
                c,
                "payload",
                calibration="beam_spot",
                attempt_id=first,
                name="BeamSpot",
                revision=1,
                source="job",
                **payload,
            ),
            insert(
                c,
                "payload",
                calibration="beam_spot",
                attempt_id=first,
                name="BeamSpotSize",
                revision=1,
                source="job",
                **payload,
            ),
            insert(
                c,
                "payload",
                calibration="beam_spot",
                attempt_id=second,
                name="BeamSpot",
                revision=2,
                source="job",
                **payload,
            ),
            insert(
                c,
                "payload",
                calibration="ecl",
                attempt_id=None,
                name="ECLGain",
                revision=1,
                source="upload",
                **payload,
            ),
            insert(
                c,
                "payload",
                calibration="ecl",
                attempt_id=None,
                name="ECLGain",
                revision=2,
                source="upload",
                **payload,
            ),
        ]
    engine.dispose()

    migrate.upgrade(db_url)

    with Session(make_engine(db_url)) as s:
        history = payloads.payload_history(s, "p")
        superseded = {p.id: p.superseded for p in history}
        assert [superseded[i] for i in ids] == [
            True,  # a newer revision of the name exists
            True,  # attempt 2 of the calibration replaced attempt 1's payloads
            False,
            True,
            False,
        ]
        assert [(p.name, p.revision) for p in payloads.current_payloads(s, "p")] == [
            ("BeamSpot", 2),
            ("ECLGain", 2),
        ]
        assert s.execute(text("SELECT COUNT(*) FROM audit_entry")).scalar() == 0
        # the new schema takes new rows through the models
        new = payloads.record_payloads(
            s, "p", "ecl", None, [("ECLGain", "b" * 32, (1, 0, 1, -1), "/g")], "upload"
        )
        assert new[0].revision == 3 and not new[0].superseded
        s.commit()
    assert _diff(db_url) == []


def test_schema_checks_say_what_to_do(db_url):
    with pytest.raises(SchemaMissing, match="run `b2cal db upgrade`"):
        check_schema(db_url)
    migrate.upgrade(db_url, "0001")
    with pytest.raises(
        SchemaBehind,
        match=f"at revision 0001, the code is at {migrate.head_revision()}: run `b2cal db upgrade`",
    ):
        check_schema(db_url)
    migrate.upgrade(db_url)
    check_schema(db_url)
    engine = create_database_engine(db_url)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(UnknownRevision, match="revision '0099', which this b2cal does not know"):
        check_schema(db_url)
    with pytest.raises(UnknownRevision):
        migrate.upgrade(db_url)


def test_history_is_in_order():
    revisions = migrate.history()
    assert [r.revision for r in revisions][:2] == ["0001", "0002"]
    assert revisions[-1].is_head and revisions[1].down_revision == "0001"
    assert all(newer.down_revision == older.revision for older, newer in itertools.pairwise(revisions))


def test_migration_files_are_numbered():
    files = sorted(p.name for p in (migrate.migrations_dir() / "versions").glob("*.py"))
    assert files[:2] == ["0001_core_tables.py", "0002_tickets_audit_superseded.py"]
    assert [f[:4] for f in files] == [f"{n:04d}" for n in range(1, len(files) + 1)]


def test_simultaneous_upgrades_of_a_fresh_database(db_url):
    """The webserver, daemon and code server may all start on an empty database at once."""
    errors = []

    def upgrade():
        try:
            migrate.upgrade(db_url)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    assert migrate.schema_status(db_url).state == "current"


def _insert_calibration_state(url, state):
    """A processing_calibration row with ``state`` written by a client that bypasses the models."""
    engine = create_database_engine(url)
    try:
        with engine.begin() as c:
            c.execute(text("DELETE FROM processing_calibration"))
            c.execute(text("DELETE FROM processing"))
            c.execute(text("DELETE FROM site"))
            runner = {c["name"] for c in inspect(c).get_columns("site")} >= {"runner", "runner_args"}
            c.execute(
                text(
                    "INSERT INTO site (id, name, backend, backend_args, storage_root, path_prefix, "
                    "signoff_policy, hold_until_deadline"
                    + (", runner, runner_args) " if runner else ") ")
                    + "VALUES (1, 'kek', 'local', '{}', '', '', 'manual', false"
                    + (", 'b2cal', '{}')" if runner else ")")
                )
            )
            c.execute(
                text(
                    "INSERT INTO processing (id, name, kind, site_id, exp_low, run_low, exp_high, run_high, "
                    "global_tags, window_hours, state, staging_due, created_at, created_by) VALUES "
                    "(1, 'p', 'prompt', 1, 1, 0, 1, -1, '[]', 48.0, 'open', false, :now, 'alice')"
                ),
                {"now": datetime(2026, 1, 1)},
            )
            c.execute(
                text(
                    "INSERT INTO processing_calibration (processing_id, calibration, state, expert_username, "
                    "excluded, updated_at, launch_generation, relaunches, version) VALUES "
                    "(1, 'beam_spot', :state, '', false, :now, 0, 0, 1)"
                ),
                {"state": state, "now": datetime(2026, 1, 1)},
            )
    finally:
        engine.dispose()


def test_states_outside_the_enum_are_refused_by_the_database_and_allowed_again_after_downgrade(db_url):
    migrate.upgrade(db_url)
    _insert_calibration_state(db_url, "signed_off")
    with pytest.raises(DBAPIError, match="ck_processing_calibration_calibration_state"):
        _insert_calibration_state(db_url, "done")  # no such state: the CHECK constraint refuses it
    assert migrate.downgrade(db_url, "0004_heal_reconcile").current == "0004_heal_reconcile"
    _insert_calibration_state(db_url, "done")  # before 0005 any string was stored
    _insert_calibration_state(db_url, "finished")
    assert migrate.upgrade(db_url).current == migrate.head_revision()
    assert _diff(db_url) == []
    with Session(make_engine(db_url)) as s:
        (row,) = s.scalars(select(ProcessingCalibration)).all()
        assert row.state is CalibrationState.FINISHED  # read back as the enum


def test_sites_stored_before_0006_keep_b2cals_runner(db_url):
    migrate.upgrade(db_url, "0005_loopcore")
    engine = create_database_engine(db_url)
    old = MetaData()
    old.reflect(engine)
    site = old.tables["site"]
    site.c["backend_args"].type = JSON()
    with engine.begin() as c:
        c.execute(site.insert().values(name="kek", backend="slurm", backend_args={"partition": "calib"},
                                       storage_root="/d", path_prefix="", signoff_policy="manual",
                                       hold_until_deadline=False))
    engine.dispose()
    migrate.upgrade(db_url)
    from b2cal_assets.db.repo import sites

    with Session(make_engine(db_url)) as s:
        (kek,) = sites.list_sites(s)
        assert (kek.runner, kek.runner_args, kek.backend_args) == ("b2cal", {}, {"partition": "calib"})
        sites.ensure_site(s, "bnl", backend="local", runner="framework", runner_args={"setup": ["true"]})
        s.commit()
    assert migrate.downgrade(db_url, "0005_loopcore").current == "0005_loopcore"
    assert migrate.upgrade(db_url).state == "current"
    assert _diff(db_url) == []


def test_0011_adds_the_jobs_own_times_and_takes_them_away_again(db_url):
    def job_columns():
        engine = create_database_engine(db_url)
        try:
            return {c["name"]: c for c in inspect(engine).get_columns("job")}
        finally:
            engine.dispose()

    migrate.upgrade(db_url, "0010_remote")
    assert not {"started_at", "finished_at"} & set(job_columns())
    assert migrate.upgrade(db_url).current == migrate.head_revision()
    columns = job_columns()
    assert columns["started_at"]["nullable"] and columns["finished_at"]["nullable"]  # older jobs have none
    assert migrate.downgrade(db_url, "0010_remote").current == "0010_remote"
    assert not {"started_at", "finished_at"} & set(job_columns())
    assert migrate.upgrade(db_url).state == "current"
    assert _diff(db_url) == []
