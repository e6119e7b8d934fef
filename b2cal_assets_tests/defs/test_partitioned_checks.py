"""The payload checks are partitioned by processing: with two processings in flight each one's check
evaluations are recorded against its own partition, and a failure in one does not show in the other."""

from __future__ import annotations

import dagster as dg
import pytest

from b2cal_assets.db.engine import database_url
from b2cal_assets.defs.checks import calibration_page_path, plot_page_path
from b2cal_assets.defs.keys import VALIDATION_CHECK, VALIDITY_CHECK, payloads_key
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets.web.calibration_html import calibration_path, plot_path
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing, make_site
from b2cal_assets_tests.loop.daemon_like import Daemon


def service():
    return loop_service(database_url(), str(TOY_SCRIPTS))


@pytest.fixture
def two_windows(toy_home):
    """p1 (runs 1-2) and p2 (runs 3-4) with 48 h windows: the experts' submissions start them."""
    make_site()
    admin.register_files(toy.generate(toy_home / "data", range(1, 5)), site_name="toy_site")
    make_processing("p1", range(1, 3), window_hours=48)
    make_processing("p2", range(3, 5), window_hours=48)
    return toy_home


def evaluations(instance, check: str, calibration: str = "toy_a"):
    """Every evaluation of a check of ``payloads/<calibration>``, as (partition, status, metadata)."""
    key = dg.AssetCheckKey(payloads_key(calibration), check)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
    return [
        (r.partition, r.status.value, r.event.dagster_event.event_specific_data.metadata)
        for r in records
        if r.event is not None
    ]


def test_each_processings_checks_are_its_own(two_windows, toy_defs):
    with dg.instance_for_test() as instance:
        daemon = Daemon(toy_defs, instance)
        daemon.settle()  # opens both windows
        service().submit("p1", "toy_a", by="alice", expert_config={"scale": 1.0})
        service().submit("p2", "toy_a", by="alice", expert_config={"scale": 2.0})  # mean off: fails
        daemon.settle()

        validation = evaluations(instance, VALIDATION_CHECK)
        assert {(p, status) for p, status, _ in validation} == {("p1", "SUCCEEDED"), ("p2", "FAILED")}
        for partition, _, metadata in validation:
            assert metadata["processing"].value == partition
            assert metadata["calibration_page"].value == calibration_path(partition, "toy_a")
            (plot,) = [v.value for k, v in metadata.items() if k.startswith("plot/")]
            assert f"/payloads/{partition}/toy_a/" in plot  # the plot in the payload store, not base64
            # and a link to it as the calibration page serves it
            assert metadata["plot_url/toy_a_mean.png"].value == plot_path(
                partition, "toy_a", "toy_a_mean.png"
            )
        validity = evaluations(instance, VALIDITY_CHECK)
        assert {p for p, _, _ in validity} == {"p1", "p2"}
        assert {status for _, status, _ in validity} == {"SUCCEEDED"}

        # what the UI shows per partition: p2's failure is not p1's latest evaluation
        key = dg.AssetCheckKey(payloads_key("toy_a"), VALIDATION_CHECK)
        info = instance.event_log_storage.get_asset_check_partition_info([key])
        latest = {i.partition_key: i.latest_execution_status.value for i in info}
        assert latest == {"p1": "SUCCEEDED", "p2": "FAILED"}
        assert service().step_states("p1")["toy_a"] == "signed_off"
        assert service().step_states("p2")["toy_a"] != "signed_off"  # the blocking check held it back


def test_the_check_links_to_the_page_the_web_serves():
    assert calibration_page_path("prompt 1/a", "toy_a") == calibration_path("prompt 1/a", "toy_a")
    assert plot_page_path("prompt 1/a", "toy_a", "plots/m e.png") == plot_path(
        "prompt 1/a", "toy_a", "plots/m e.png"
    )
