"""The loop with Dagster's own storage (runs, events, sensor cursors) and the calibration database on
MariaDB and on PostgreSQL, as in production (docker/dagster.yaml)."""

import contextlib

import dagster as dg
import pytest
from sqlalchemy import make_url

from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
from b2cal_assets_tests.defs.driver import drive
from b2cal_assets_tests.fixtures.databases import temporary_database


def dagster_storage(kind: str, url: str) -> dict:
    parsed = make_url(url)
    if kind == "mariadb":
        return {"mysql": {"mysql_url": parsed.set(drivername="mysql+mysqlconnector").render_as_string(False)}}
    # dagster-postgres needs psycopg2 (SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://)
    return {
        "postgres": {"postgres_url": parsed.set(drivername="postgresql+psycopg2").render_as_string(False)}
    }


@pytest.fixture(params=["mariadb", "postgres"])
def engine_kind(request, b2cal_home, tmp_path, monkeypatch):
    with contextlib.ExitStack() as stack:
        calibration_db = stack.enter_context(temporary_database(request.param, tmp_path))
        dagster_db = stack.enter_context(temporary_database(request.param, tmp_path))
        monkeypatch.setenv("B2CAL_DATABASE_URL", calibration_db)
        yield request.param, calibration_db, dagster_db


@pytest.fixture
def engine_loop(engine_kind, request):
    kind, calibration_db, dagster_db = engine_kind
    request.getfixturevalue("toy_loop_one")
    return kind, calibration_db, dagster_db


def test_loop_runs_with_dagster_storage_on_the_server(engine_loop, toy_defs):
    kind, calibration_db, dagster_db = engine_loop
    with dg.instance_for_test(overrides={"storage": dagster_storage(kind, dagster_db)}) as instance:
        results = drive(toy_defs, instance)
        assert results and all(r.success for _, r in results)
        service = loop_service(calibration_db, str(TOY_SCRIPTS))
        assert set(service.step_states("p1").values()) == {"signed_off"}
        # Dagster's records are in the server: runs, the partition, check evaluations
        assert instance.get_dynamic_partitions("processing") == ["p1"]
        assert len(instance.get_runs()) == len(results)
        key = dg.AssetCheckKey(dg.AssetKey(["payloads", "toy_a"]), "payload_validity")
        assert instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key] is not None
