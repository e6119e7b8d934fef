"""Launching payloads/<cal> from the UI: settings checked before anything runs, held submissions are no failure."""

import dagster as dg
import pytest

from b2cal_assets.db.engine import database_url
from b2cal_assets.db.repo import attempts
from b2cal_assets.defs.keys import payloads_key
from b2cal_assets.domain.processing import SignoffPolicy, SiteSpec
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing
from b2cal_assets_tests.loop.daemon_like import Daemon


@pytest.fixture
def windows_open(toy_home):
    """p_hold at a site that holds jobs until the deadline, p_now at one that starts at once; 48 h windows."""
    for name, hold in (("hold_site", True), ("now_site", False)):
        admin.ensure_site(
            SiteSpec(
                name=name,
                backend="local",
                backend_args={},
                storage_root="/tmp",
                path_prefix="",
                signoff_policy=SignoffPolicy("automatic"),
                hold_until_deadline=hold,
            )
        )
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    admin.register_files(toy.generate(toy_home / "data", range(1, 3), events=50), site_name="now_site")
    make_processing("p_hold", range(1, 3), site="hold_site", window_hours=48)
    make_processing("p_now", range(1, 3), site="now_site", window_hours=48)
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    return service


def failure_text(result) -> str:
    return " ".join(
        (e.step_failure_data.user_failure_data.description or "")
        if e.step_failure_data.user_failure_data
        else e.step_failure_data.error.message
        for e in result.get_step_failure_events()
    )


@pytest.mark.parametrize(
    "expert_config, named",
    [({"scael": 2.0}, 'unexpected config entry "scael"'), ({"scale": "big"}, 'Value "big"')],
)
def test_the_launchpad_refuses_a_bad_expert_config_before_launch_naming_the_key(
    windows_open, toy_defs, expert_config, named
):
    """The launchpad's config check knows the script's expert_config keys and their types, so a typo
    is shown before the run is launched (no run, no attempt), not as a failed run."""
    job = toy_defs.resolve_implicit_global_asset_job_def()
    op = payloads_key("toy_a").to_python_identifier()
    fields = job.run_config_schema.config_type.fields["ops"].config_type.fields[op].config_type.fields
    assert set(fields["config"].config_type.fields["expert_config"].config_type.fields) == {"scale", "fail"}
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        daemon.settle()  # opens the windows
        with pytest.raises(dg.DagsterInvalidConfigError, match=named):
            daemon.launch(
                [payloads_key("toy_a")], "p_now", user="alice", config={"expert_config": expert_config}
            )
        with windows_open.session() as s:
            assert attempts.list_attempts(s, "p_now", "toy_a") == []
        assert windows_open.step_states("p_now")["toy_a"] == "window_open"


def test_settings_the_launchpad_cannot_check_fail_the_run_naming_them_and_record_nothing(
    windows_open, toy_defs
):
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        daemon.settle()
        result = daemon.launch(
            [payloads_key("toy_a")], "p_now", user="alice", config={"input_data_filters": {"bhabha": ["On"]}}
        )
        assert not result.success
        text = failure_text(result)
        assert "toy_a: the submission was refused" in text and "no input data named bhabha" in text
        with windows_open.session() as s:
            assert attempts.list_attempts(s, "p_now", "toy_a") == []
        assert windows_open.step_states("p_now")["toy_a"] == "window_open"


def test_held_submission_is_a_successful_run_that_materialises_nothing(windows_open, toy_defs):
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        daemon.settle()
        result = daemon.launch(
            [payloads_key("toy_a")], "p_hold", user="alice", config={"expert_config": {"scale": 1.01}}
        )
        assert result.success
        assert result.get_asset_materialization_events() == []
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
        assert any("starts jobs only when the window closes" in m for m in logs)
        with windows_open.session() as s:
            (held,) = attempts.list_attempts(s, "p_hold", "toy_a")
        assert (held.state, held.submitted_by, held.expert_config) == ("held", "alice", {"scale": 1.01})
        assert windows_open.step_states("p_hold")["toy_a"] == "window_open"
