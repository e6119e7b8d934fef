"""The whole loop for two processings at once through the real Dagster daemon: sensors tick, runs are
queued and launched in their own processes, checks run, sign-offs are materialised."""

import os
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from b2cal_assets.db.engine import database_url
from b2cal_assets.defs.instance import prepare_dagster_home, start_daemon, stop_daemon, wait_for_runs
from b2cal_assets.defs.keys import payloads_key, signoff_key, skim_key
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS

REPO = Path(__file__).resolve().parents[2]
STEPS = ("toy_a", "toy_b", "cdst", "toy_c")

pytestmark = pytest.mark.slow


def wait_for_loop(service, processings, daemon, log: Path, timeout_s: float = 900.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert daemon.poll() is None, f"the daemon died:\n{log.read_text()[-3000:]}"
        states = {p: service.step_states(p) for p in processings}
        if all(s and all(v == "signed_off" for v in s.values()) for s in states.values()):
            return
        failed = {p: {k: v for k, v in s.items() if v in ("failed", "rejected")} for p, s in states.items()}
        assert not any(failed.values()), f"steps failed: {failed}\n{log.read_text()[-3000:]}"
        time.sleep(1.0)
    pytest.fail(f"the loop did not finish in {timeout_s:.0f} s: {states}\n{log.read_text()[-3000:]}")


def test_two_processings_run_through_the_daemon(toy_loop):
    home = toy_loop
    dagster_home = home / "dagster"
    prepare_dagster_home(dagster_home)
    env = {
        "B2CAL_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "B2CAL_CALIBRATIONS_DIR": str(TOY_SCRIPTS),
        "B2CAL_CDST_PRODUCER": "b2cal_assets_tests.defs.toy:produce_cdst",
        "B2CAL_LOCAL_MAX_PROCESSES": "2",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    log = home / "logs" / "daemon.log"
    daemon = start_daemon(env, log)
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    try:
        wait_for_loop(service, ["p1", "p2"], daemon, log)
        assert wait_for_runs(dagster_home) == 0
    finally:
        stop_daemon(daemon)

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        assert set(instance.get_dynamic_partitions("processing")) == {"p1", "p2"}
        runs = instance.get_runs()
        by_sensor = [r for r in runs if r.tags.get("dagster/sensor_name") == "calibration_loop_sensor"]
        # one run per step and processing, each launched by the loop sensor and successful
        assert len(by_sensor) == 2 * len(STEPS), [r.tags for r in runs]
        assert {r.status for r in by_sensor} == {dg.DagsterRunStatus.SUCCESS}
        assert {r.tags["dagster/partition"] for r in by_sensor} == {"p1", "p2"}
        for name in ("toy_a", "toy_b", "toy_c"):
            for check in ("payload_validity", "validation"):
                key = dg.AssetCheckKey(payloads_key(name), check)
                history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
                assert len(history) == 2, (name, check, history)
                assert {h.status for h in history} == {AssetCheckExecutionRecordStatus.SUCCEEDED}
            for partition in ("p1", "p2"):
                assert instance.get_latest_materialization_event(signoff_key(name)) is not None
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=signoff_key(name), asset_partitions=[partition]), limit=1
                ).records
                assert records, f"signoff/{name} not materialised for {partition}"
        # the data-arrival sensor reported the skims per processing
        skim = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=skim_key("hadron_calib"), asset_partitions=["p1"]), limit=5
        ).records
        assert (
            skim
            and skim[0]
            .event_log_entry.dagster_event.event_specific_data.materialization.metadata["new_files"]
            .value
            == 2
        )
    finally:
        instance.dispose()
