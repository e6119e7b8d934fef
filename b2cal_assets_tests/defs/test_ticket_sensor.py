"""The ticket sensor: the only sender of ticket messages; Jira down never fails its tick."""

import dagster as dg

from b2cal_assets.db.engine import database_url
from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.defs.tickets import JiraResource, jira_resource_from_env
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing, make_site
from b2cal_assets_tests.defs.driver import evaluate


def defs_with(jira: JiraResource) -> dg.Definitions:
    loop = CalibrationLoopResource(calibrations_dir=str(TOY_SCRIPTS))
    return build_definitions(str(TOY_SCRIPTS), loop=loop, jira=jira)


def jira_for(fake) -> JiraResource:
    return JiraResource(url=fake.url, user=fake.user, token=fake.token, project=fake.project, timeout_s=5)


def setup_messages(toy_home):
    make_site()
    make_processing("p1", range(1, 3), window_hours=48)
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    service.tick()  # every calibration gets its "created" message; toy_a has no skims, so no window yet
    return service


def test_ticket_sensor_sends_pending_messages_once(toy_home, fake_jira):
    setup_messages(toy_home)
    defs = defs_with(jira_for(fake_jira))
    with dg.instance_for_test() as instance:
        result = evaluate(defs, "ticket_sensor", instance)
        assert "sent 3 ticket message(s), 0 waiting" in result.skip_reason.skip_message
        summaries = sorted(i.fields["summary"] for i in fake_jira.created_issues())
        assert summaries == ["[p1] toy_a", "[p1] toy_b", "[p1] toy_c"]
        again = evaluate(defs, "ticket_sensor", instance)
        assert "sent 0 ticket message(s)" in again.skip_reason.skip_message
        assert len(fake_jira.created_issues()) == 3


def test_jira_down_does_not_fail_the_tick_and_messages_wait(toy_home, fake_jira):
    setup_messages(toy_home)
    defs = defs_with(jira_for(fake_jira))
    fake_jira.down("refuse")
    with dg.instance_for_test() as instance:
        result = evaluate(defs, "ticket_sensor", instance)
        assert "Jira is unavailable" in result.skip_reason.skip_message
        fake_jira.up()
        result = evaluate(defs, "ticket_sensor", instance)
        assert "0 waiting" in result.skip_reason.skip_message
    assert len(fake_jira.created_issues()) == 3


def test_without_jira_messages_stay_in_the_database(toy_home):
    setup_messages(toy_home)
    with dg.instance_for_test() as instance:
        result = evaluate(defs_with(JiraResource()), "ticket_sensor", instance)
    assert "no Jira configured: 3 ticket message(s) kept" in result.skip_reason.skip_message


def test_jira_is_configured_from_the_environment(monkeypatch):
    monkeypatch.delenv("B2CAL_JIRA_URL", raising=False)
    assert jira_resource_from_env().get_client() is None
    monkeypatch.setenv("B2CAL_JIRA_URL", "https://jira.example.org")
    monkeypatch.setenv("B2CAL_JIRA_USER", "b2cal-bot")
    monkeypatch.setenv("B2CAL_JIRA_PROJECT", "CAL")
    monkeypatch.setenv("B2CAL_JIRA_TOKEN", "t0ken")
    resource = jira_resource_from_env()
    client = resource.process_config_and_initialize().get_client()
    assert (client.url, client.user, client.project) == ("https://jira.example.org", "b2cal-bot", "CAL")
    assert "t0ken" not in repr(client)
