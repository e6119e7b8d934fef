"""The catalog fed by a real Rucio server: what it announces at a site's RSE is registered once, with its
``root://`` PFN, adler32 and run metadata; a replica that is gone or whose checksum changed is flagged and
no longer given to jobs; a Rucio that does not answer leaves the loop going and is shown in the status."""

from __future__ import annotations

import json
import socket
import zlib
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.catalog_sources.rucio import Want
from b2cal_assets.cli import main as cli_main
from b2cal_assets.db.engine import database_url
from b2cal_assets.db.models import CatalogFile, utcnow
from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.defs.rucio import RUCIO_SENSOR, RucioCatalogResource, rucio_resource_from_env
from b2cal_assets.domain.iov import IoV
from b2cal_assets.loop.factory import loop_service
from b2cal_assets.settings import SettingsError
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing, make_site
from b2cal_assets_tests.defs.driver import drive, evaluate
from b2cal_assets_tests.defs.rucio_helpers import announce, resource_for
from b2cal_assets_tests.fixtures.services import XRD_TEST_ENV

pytestmark = [pytest.mark.rucio, pytest.mark.xrootd]

SITE = "rucio_site"


@pytest.fixture
def rucio_loop(toy_home, rucio_rse, tmp_path):
    """A site reading the test RSE, a processing over runs 1-2, toy skims of runs 1-3 to announce."""
    make_site(SITE)
    make_processing("p_rucio", range(1, 3), site=SITE)
    files = toy.generate(tmp_path / "skims", range(1, 4), events=200)
    return rucio_rse, files, loop_service(database_url(), str(TOY_SCRIPTS))


def _rows(service) -> dict[str, CatalogFile]:
    with service.session() as s:
        rows = list(s.scalars(select(CatalogFile)))
        for r in rows:
            _ = r.run  # loaded while the session is open
            s.expunge(r)
        return {Path(r.path).name: r for r in rows}


def _status(capsys) -> str:
    capsys.readouterr()
    assert cli_main(["status", "--no-runs"]) == 0
    return capsys.readouterr().out


def test_what_rucio_announces_is_catalogued_once_with_pfn_checksum_and_run_metadata(rucio_loop):
    rse, files, service = rucio_loop
    run1 = [f for f in files if f.run == 1]
    pfns = announce(rse, run1, meta={"beam_energy": "Continuum", "run_type": "cosmic"})
    resource = resource_for(rse, SITE, full_scan_interval_s=3600)

    (report,) = resource.sync_all(service)
    assert report.ok and report.full and report.new == 2, report.describe()
    rows = _rows(service)
    assert set(rows) == {"hadron_calib_e1_r1.root", "bhabha_all_calib_e1_r1.root"}
    hadron = rows["hadron_calib_e1_r1.root"]
    content = Path(run1[0].path).read_bytes()
    assert hadron.path == pfns["hadron_calib_e1_r1.root"] and hadron.path.startswith("root://")
    assert hadron.did == f"{rse.scope}:hadron_calib_e1_r1.root"
    assert hadron.checksum == f"{zlib.adler32(content) & 0xFFFFFFFF:08x}"
    assert (hadron.size_bytes, hadron.n_events) == (len(content), 200)
    assert (hadron.run.exp, hadron.run.run, hadron.run.beam_energy, hadron.run.run_type) == (
        1,
        1,
        "Continuum",
        "cosmic",
    )
    # the jobs read the root:// PFN (toy_a's filters select on the run metadata Rucio gave: Good, On)
    assert service.input_data("p_rucio", "toy_a")["hadron_calib"] == {hadron.path: (1, 1, 1, 1)}

    # nothing changed: the incremental scan registers nothing; then run 2 arrives, run 3 (outside
    # the processing's IoV) is not catalogued
    (again,) = resource.sync_all(service)
    assert again.ok and not again.full and again.new == 0, again.describe()
    announce(rse, [f for f in files if f.run in (2, 3)])
    (later,) = resource.sync_all(service)
    assert not later.full and later.new == 2, later.describe()
    assert sorted(_rows(service)) == sorted(Path(f.path).name for f in files if f.run in (1, 2))


def test_a_replica_gone_from_the_rse_is_flagged_and_no_longer_read(rucio_loop, capsys):
    rse, files, service = rucio_loop
    announce(rse, [f for f in files if f.run in (1, 2)])
    resource = resource_for(rse, SITE, full_scan_interval_s=0)  # every sync a full scan
    (first,) = resource.sync_all(service)
    assert first.new == 4

    rse.delete_replica("hadron_calib_e1_r2.root")  # as Rucio's reaper deletes it
    (report,) = resource.sync_all(service)
    assert report.ok and len(report.flagged) == 1 and "hadron_calib_e1_r2.root" in report.flagged[0]
    inputs = service.input_data("p_rucio", "toy_a")["hadron_calib"]
    assert [Path(p).name for p in inputs] == ["hadron_calib_e1_r1.root"]
    assert _rows(service)["hadron_calib_e1_r2.root"].flag == "missing"  # kept for the record
    out = _status(capsys)
    assert "p_rucio: 1 file(s) flagged by their source, not given to jobs:" in out
    assert f"{rse.scope}:hadron_calib_e1_r2.root (missing): Rucio no longer lists a replica at {SITE}" in out
    assert cli_main(["status", "--no-runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["p_rucio"]
    assert [(f["did"], f["flag"]) for f in listed["flagged_files"]] == [
        (f"{rse.scope}:hadron_calib_e1_r2.root", "missing")
    ]
    assert [(h["site"], h["reachable"]) for h in listed["data_sources"]] == [(SITE, True)]


def test_a_changed_checksum_is_flagged_by_the_incremental_scan(rucio_loop, capsys):
    rse, files, service = rucio_loop
    announce(rse, [f for f in files if f.run == 1])
    resource = resource_for(rse, SITE, full_scan_interval_s=3600)  # only incremental scans after the first
    resource.sync_all(service)
    old = _rows(service)["bhabha_all_calib_e1_r1.root"].checksum

    rse.set_checksum("bhabha_all_calib_e1_r1.root", "0badc0de")
    (report,) = resource.sync_all(service)
    assert not report.full and len(report.flagged) == 1, report.describe()
    row = _rows(service)["bhabha_all_calib_e1_r1.root"]
    assert row.flag == "checksum_changed" and row.checksum == old  # what the earlier attempts read
    assert row.flag_detail == f"adler32 was {old}, Rucio now says 0badc0de"
    assert service.input_data("p_rucio", "toy_b")["bhabha_all_calib"] == {}
    assert "(checksum_changed): adler32 was" in _status(capsys)


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance):
    """One evaluation of the Rucio sensor, as the daemon makes it."""
    sensor = defs.resolve_sensor_def(RUCIO_SENSOR)
    resources = defs.get_repository_def().get_top_level_resources()
    with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as ctx:
        return sensor(ctx)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_rucio_is_retried_with_backoff_and_shown_while_the_loop_goes_on(rucio_loop, capsys):
    rse, files, service = rucio_loop
    down = resource_for(rse, SITE, host=f"http://127.0.0.1:{_dead_port()}", backoff_base_s=60, timeout_s=2)
    defs = build_definitions(
        str(TOY_SCRIPTS), loop=CalibrationLoopResource(calibrations_dir=str(TOY_SCRIPTS)), rucio=down
    )
    with dg.instance_for_test() as instance:
        skipped = _tick(defs, instance)  # the sensor does not fail
        assert "Rucio unreachable" in (skipped.skip_message or "")
        assert evaluate(defs, "calibration_loop_sensor", instance) is not None  # the loop ticks on
    out = _status(capsys)
    assert (
        f"DATA SOURCE: Rucio for {SITE} (http://127.0.0.1:" in out and "UNREACHABLE, 1 failed sync(s)" in out
    )

    # within the backoff nothing is asked; after it, the next try; once Rucio answers, all is well again
    (waiting,) = down.sync_all(service)
    assert waiting.skipped.startswith("Rucio unreachable (1 failed sync(s)); next try at")
    service.clock = lambda: utcnow() + timedelta(seconds=61)
    (second,) = down.sync_all(service)
    assert not second.ok and not second.skipped
    (health,) = service.source_health()
    assert health.failures == 2 and health.next_try_at is not None
    assert health.next_try_at - utcnow() > timedelta(seconds=150)  # 120 s after the second, doubled
    announce(rse, [f for f in files if f.run == 1])
    service.clock = lambda: utcnow() + timedelta(seconds=400)
    (up,) = resource_for(rse, SITE).sync_all(service)
    assert up.ok and up.new == 2, up.describe()
    assert "answering, last scan" in _status(capsys)


def test_settings_point_the_resource_at_a_sites_rucio(monkeypatch):
    monkeypatch.setenv("B2CAL_RUCIO_HOST", "https://rucio.example.org")
    monkeypatch.setenv("B2CAL_RUCIO_RSES", "kek=KEK2-CALIB, bnl = BNL-CALIB")
    monkeypatch.setenv("B2CAL_RUCIO_META_KEYS", "exp=experiment,run=run_number")
    monkeypatch.setenv("B2CAL_RUCIO_PASSWORD", "secret")
    resource = rucio_resource_from_env()
    assert isinstance(resource, RucioCatalogResource)
    assert resource.site_rses == {"kek": "KEK2-CALIB", "bnl": "BNL-CALIB"}
    naming = RucioCatalogResource(meta_keys=resource.meta_keys).naming()
    assert (naming.key("exp"), naming.key("run"), naming.key("magnet")) == (
        "experiment",
        "run_number",
        "magnet",
    )
    monkeypatch.setenv("B2CAL_RUCIO_RSES", "kek")
    with pytest.raises(SettingsError, match=r"B2CAL_RUCIO_RSES='kek': each item must be name=value"):
        rucio_resource_from_env()
    monkeypatch.setenv("B2CAL_RUCIO_RSES", "kek=KEK2")
    monkeypatch.setenv("B2CAL_RUCIO_META_KEYS", "colour=c")
    with pytest.raises(SettingsError, match="B2CAL_RUCIO_META_KEYS: unknown fact 'colour'"):
        rucio_resource_from_env()
    assert not RucioCatalogResource().configured()  # no Rucio: the built-in catalog only


@pytest.mark.slow
def test_a_whole_processing_runs_from_what_rucio_announced_reading_through_xrootd(rucio_loop, monkeypatch):
    rse, files, service = rucio_loop
    for key, value in XRD_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    announce(rse, [f for f in files if f.run in (1, 2)])
    loop = CalibrationLoopResource(
        calibrations_dir=str(TOY_SCRIPTS), cdst_producer="b2cal_assets_tests.defs.toy:produce_cdst"
    )
    defs = build_definitions(str(TOY_SCRIPTS), loop=loop, rucio=resource_for(rse, SITE))
    with dg.instance_for_test() as instance:
        assert "4 new file(s) from Rucio" in (_tick(defs, instance).skip_message or "")
        arrival = evaluate(defs, "data_arrival_sensor", instance)
        assert {(e.asset_key.path[-1], e.partition) for e in arrival.asset_events} == {
            ("hadron_calib", "p_rucio"),
            ("bhabha_all_calib", "p_rucio"),
        }
        results = drive(defs, instance)
        assert results and all(r.success for _, r in results), [r for _, r in results if not r.success]
    assert set(service.step_states("p_rucio").values()) == {"signed_off"}
    inputs = service.input_data("p_rucio", "toy_a")["hadron_calib"]
    assert sorted(inputs) == sorted(
        r.path for r in _rows(service).values() if r.data_tag == "hadron_calib" and r.data_format == "raw"
    )
    assert all(p.startswith("root://127.0.0.1:") and "/calib/rucio_" in p for p in inputs)
    (payload,) = service.current_payloads("p_rucio", "toy_a")
    assert abs(float(read_payload(payload.file)["mean"].ravel()[0]) - toy.TRUE_MEAN) < 0.1


def test_a_rucio_that_refuses_the_login_or_a_site_it_does_not_know_is_named_not_raised(rucio_loop, capsys):
    rse, _files, service = rucio_loop
    # (an account the server does not know: a wrong password for a known one may meet the client's token cache)
    (refused,) = resource_for(rse, SITE, account="b2cal_nobody", password="wrong").sync_all(service)
    assert not refused.ok and refused.describe().startswith(
        f"{SITE}: Rucio refused the sync (error: Rucio at "
    )
    assert "CannotAuthenticate" in refused.error
    out = _status(capsys)
    assert f"DATA SOURCE: Rucio for {SITE}" in out and "FAILING, 1 failed sync(s)" in out
    (unknown,) = resource_for(rse, "no_such_site").sync_all(service)
    assert unknown.skipped.startswith("not synced: no site named 'no_such_site'")


def test_a_sites_own_naming_and_metadata_keys(rucio_loop):
    rse, files, service = rucio_loop
    (f,) = [f for f in files if f.run == 2 and f.data_tag == "hadron_calib"]
    rse.add_file("skim-000123.root", Path(f.path).read_bytes(), events=f.n_events)
    meta = {"experiment": 1, "runnr": 2, "skim": "hadron_calib", "dq": "Good", "field": "On"}
    rse.add_dataset("calibskim_hadron_calib_000123", ["skim-000123.root"], meta)  # a name that says nothing
    resource = resource_for(
        rse,
        SITE,
        dataset_glob="calibskim_{data_tag}_*",
        meta_keys={
            "exp": "experiment",
            "run": "runnr",
            "data_tag": "skim",
            "data_quality": "dq",
            "magnet": "field",
        },
    )
    (report,) = resource.sync_all(service)
    assert report.new == 1, report.describe()
    (row,) = _rows(service).values()
    assert (row.run.exp, row.run.run, row.data_tag, row.n_events) == (1, 2, "hadron_calib", f.n_events)
    assert list(service.input_data("p_rucio", "toy_a")["hadron_calib"]) == [row.path]


def test_one_scan_lists_the_datasets_of_every_data_tag_in_one_request(rucio_loop):
    rse, files, _ = rucio_loop
    announce(rse, [f for f in files if f.run == 1])
    catalog = resource_for(rse, SITE).catalog(rse.rse)
    listed = catalog.client.list_dids
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return listed(*args, **kwargs)

    catalog.client.list_dids = counted
    scan = catalog.scan([Want(frozenset({"hadron_calib", "bhabha_all_calib"}), IoV(1, 1, 1, 2))], None)
    assert len(calls) == 1
    assert sorted(d.data_tag for d in scan.datasets) == ["bhabha_all_calib", "hadron_calib"]
