"""The upload sensor: a whole processing run by Dagster ends in the test conditions database's staging tag."""

import dagster as dg

from b2cal_assets.db.engine import database_url
from b2cal_assets.defs.conditions import ConditionsDbResource, condb_resource_from_env
from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
from b2cal_assets_tests.defs.driver import drive, evaluate


def defs_with(condb: ConditionsDbResource) -> dg.Definitions:
    loop = CalibrationLoopResource(
        calibrations_dir=str(TOY_SCRIPTS), cdst_producer="b2cal_assets_tests.defs.toy:produce_cdst"
    )
    return build_definitions(str(TOY_SCRIPTS), loop=loop, condb=condb)


def condb_for(server) -> ConditionsDbResource:
    return ConditionsDbResource(url=server.url, token=server.token, attempts=2, backoff_s=0.01)


def test_a_processing_run_by_dagster_lands_in_the_staging_tag_once(toy_loop_one, condb_server):
    defs = defs_with(condb_for(condb_server))
    with dg.instance_for_test() as instance:
        condb_server.down("refuse")  # down while the processing runs: nothing of the loop fails
        results = drive(defs, instance)
        assert results and all(r.success for _, r in results)
        evaluate(defs, "calibration_loop_sensor", instance)  # the tick that sees it finished
        down = evaluate(defs, "condb_upload_sensor", instance)
        assert "1 staging tag upload(s) tried" in down.skip_reason.skip_message
        service = loop_service(database_url(), str(TOY_SCRIPTS))
        assert service.condb_upload("p1").outcome == "unavailable"

        condb_server.up()
        service.upload_condb("p1", condb_for(condb_server).get_client(), by="manager")  # a manager's retry
        assert evaluate(defs, "condb_upload_sensor", instance).skip_reason.skip_message == "no upload due"
    signed_off = sorted(
        (p.name, p.checksum, tuple(p.iov))
        for p in service.inputs.signed_off_payloads("p1")
    )
    landed = sorted((n, md5, iov) for n, _rev, md5, iov in condb_server.tag_content("staging_p1"))
    assert landed == signed_off and {n for n, _m, _i in landed} == {"ToyA", "ToyB", "ToyC"}
    assert condb_server.tags["staging_p1"].state == "OPEN"
    assert len(condb_server.payloads) == len(signed_off)


def test_the_sensor_uploads_what_is_due(toy_loop_one, condb_server):
    defs = defs_with(condb_for(condb_server))
    with dg.instance_for_test() as instance:
        drive(defs, instance)
        evaluate(defs, "calibration_loop_sensor", instance)
        result = evaluate(defs, "condb_upload_sensor", instance)
        assert "1 staging tag upload(s) tried" in result.skip_reason.skip_message
        assert evaluate(defs, "condb_upload_sensor", instance).skip_reason.skip_message == "no upload due"
    assert {n for n, *_ in condb_server.tag_content("staging_p1")} == {"ToyA", "ToyB", "ToyC"}


def test_without_a_conditions_database_the_sensor_says_so(toy_home):
    with dg.instance_for_test() as instance:
        result = evaluate(defs_with(ConditionsDbResource()), "condb_upload_sensor", instance)
    assert result.skip_reason.skip_message == "no conditions database configured (B2CAL_CONDB_URL)"


def test_the_resource_is_configured_from_the_environment(monkeypatch):
    monkeypatch.delenv("B2CAL_CONDB_URL", raising=False)
    assert condb_resource_from_env().get_client() is None
    monkeypatch.setenv("B2CAL_CONDB_URL", "https://conditions.example.org/b2s/rest/")
    monkeypatch.setenv("B2CAL_CONDB_TOKEN", "t0ken")
    resource = condb_resource_from_env()
    assert isinstance(resource.url, dg.EnvVar) and isinstance(resource.token, dg.EnvVar)
    client = resource.process_config_and_initialize().get_client()
    assert client is not None and client.base_url == "https://conditions.example.org/b2s/rest/v2/"
    assert "t0ken" not in repr(client)
