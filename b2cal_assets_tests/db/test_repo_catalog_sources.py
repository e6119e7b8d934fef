"""Files announced by a data source, on every engine: one bulk registration, flags, the source's backoff."""

from datetime import datetime, timedelta

from sqlalchemy import select

from b2cal_assets.db.models import CatalogFile, Replica
from b2cal_assets.db.repo import catalog, catalog_sources
from b2cal_assets.db.repo.catalog_sources import SourceFile
from b2cal_assets_tests.db.factories import make_processing

NOW = datetime(2026, 12, 2, 12, 0)


def _file(i: int, run: int = 5, checksum: str = "", available: bool = True) -> SourceFile:
    return SourceFile(
        did=f"belle:f{i}.root",
        path=f"root://se.example.org:1094//belle/hlt_mumu/f{i}.root",
        data_tag="hlt_mumu",
        exp=1,
        run=run,
        n_events=10 * i,
        size_bytes=1000 + i,
        checksum=checksum or f"{i:08x}",
        available=available,
        run_info={"magnet": "Off"},
    )


def _files_for(s):
    return catalog.files_for(
        s, exp_low=1, run_low=0, exp_high=1, run_high=-1, data_tags=None, site_name="kek"
    )


def test_a_batch_is_registered_once_with_its_replicas_and_run_metadata(db_session):
    s = db_session
    make_processing(s)
    batch = [_file(i, run=5 + i % 3) for i in range(1200)]  # more than one chunk of DIDs
    applied = catalog_sources.register_source_files(s, "kek", batch, now=NOW)
    assert applied.new == 1200 and not applied.flagged
    again = catalog_sources.register_source_files(s, "kek", batch, now=NOW)
    assert again.new == 0 and not again.flagged
    rows = _files_for(s)
    assert len(rows) == 1200 and len(s.scalars(select(Replica)).all()) == 1200
    f, run, url = rows[0]
    assert (run.run, run.magnet) == (5, "Off") and url == f.path and f.checksum == f"{0:08x}"


def test_changed_checksum_and_unavailable_replica_are_flagged_and_left_out(db_session):
    s = db_session
    make_processing(s)
    catalog_sources.register_source_files(s, "kek", [_file(1), _file(2), _file(3)], now=NOW)
    applied = catalog_sources.register_source_files(
        s, "kek", [_file(1, checksum="0badc0de"), _file(2, available=False)], now=NOW
    )
    assert applied.flagged == [
        "belle:f1.root: adler32 was 00000001, Rucio now says 0badc0de",
        "belle:f2.root: the replica at kek is no longer available in Rucio",
    ]
    assert [f.did for f, _run, _url in _files_for(s)] == ["belle:f3.root"]
    assert catalog.tags_in(s, ["hlt_mumu"], exp_low=1, run_low=0, exp_high=1, run_high=-1) == {"hlt_mumu"}
    # a full scan that lists only f2 again: f3 is gone, f2 is back
    gone = catalog_sources.flag_missing(s, "kek", {"belle:f2.root"}, [(["hlt_mumu"], (1, 0, 1, -1))], now=NOW)
    back = catalog_sources.register_source_files(s, "kek", [_file(2)], now=NOW)
    assert [x.split(":")[1] for x in gone.flagged] == ["f3.root"] and back.restored == ["belle:f2.root"]
    assert [f.did for f, _run, _url in _files_for(s)] == ["belle:f2.root"]
    flagged = catalog_sources.flagged_in(s, exp_low=1, run_low=0, exp_high=1, run_high=-1)
    assert [(x.did, x.flag) for x in flagged] == [
        ("belle:f1.root", "checksum_changed"),
        ("belle:f3.root", "missing"),
    ]
    assert s.scalar(select(CatalogFile.checksum).where(CatalogFile.did == "belle:f1.root")) == "00000001"


def test_failures_back_off_doubling_up_to_the_maximum(db_session):
    s = db_session
    make_processing(s)
    row = catalog_sources.source_state(s, "kek")
    waits = []
    for _ in range(5):
        catalog_sources.record_failure(s, row, endpoint="rucio", error="down", now=NOW, base_s=30, max_s=100)
        waits.append(row.next_try_at - NOW)
    assert waits == [timedelta(seconds=x) for x in (30, 60, 100, 100, 100)] and row.failures == 5
    catalog_sources.record_success(s, row, endpoint="rucio", updated_after=NOW, full_scan=True, now=NOW)
    assert (row.failures, row.next_try_at, row.last_full_scan_at) == (0, None, NOW)


def test_a_file_announced_at_two_sites_is_read_at_each_from_its_own_rse(db_session):
    s = db_session
    make_processing(s)
    make_processing(s, "proc_2", site="desy")
    catalog_sources.register_source_files(s, "kek", [_file(1)], now=NOW)
    at_desy = SourceFile(**{**_file(1).__dict__, "path": "root://desy.example.org:1094//belle/f1.root"})
    assert catalog_sources.register_source_files(s, "desy", [at_desy], now=NOW).new == 0
    urls = {
        site: catalog.files_for(
            s, exp_low=1, run_low=0, exp_high=1, run_high=-1, data_tags=None, site_name=site
        )[0][2]
        for site in ("kek", "desy")
    }
    assert urls == {"kek": _file(1).path, "desy": at_desy.path}
