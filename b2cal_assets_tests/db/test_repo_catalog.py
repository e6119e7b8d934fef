"""Sites, processings and the file catalog on every engine."""

import pytest

from b2cal_assets.db.errors import AlreadyExists, InvalidValue, NotFound
from b2cal_assets.db.repo import catalog, processings, sites
from b2cal_assets_tests.db.factories import make_processing, register_runs


def test_processing_roundtrip_and_duplicate_name(db_session):
    s = db_session
    created = make_processing(s, "bucket_1", iov=(12, 100, 12, 250))
    s.commit()
    got = processings.get_processing(s, "bucket_1")
    assert (got.exp_low, got.run_low, got.exp_high, got.run_high) == (12, 100, 12, 250)
    assert got.site.name == "kek" and got.global_tags == ["gt_online"] and got.state == "open"
    assert got.id == created.id
    with pytest.raises(AlreadyExists, match="bucket_1"):
        make_processing(s, "bucket_1")
    s.rollback()
    assert [p.name for p in processings.list_processings(s)] == ["bucket_1"]


def test_unknown_processing_lists_known_names(db_session):
    make_processing(db_session, "bucket_a")
    make_processing(db_session, "bucket_b")
    with pytest.raises(NotFound, match=r"no processing named 'bucket_c'; known: bucket_a, bucket_b"):
        processings.get_processing(db_session, "bucket_c")


def test_processing_state_and_bad_values(db_session):
    s = db_session
    make_processing(s, "p")
    processings.set_processing_state(s, "p", "finished")
    assert [p.name for p in processings.list_processings(s, state="finished")] == ["p"]
    assert processings.list_processings(s, state="open") == []
    with pytest.raises(InvalidValue, match="one of open, finished, cancelled"):
        processings.set_processing_state(s, "p", "done")
    with pytest.raises(InvalidValue, match="high end is before the low end"):
        processings.create_processing(s, "q", "prompt", "kek", (5, 10, 4, 0))
    with pytest.raises(NotFound, match="no site named 'desy'; known: kek"):
        processings.create_processing(s, "q", "prompt", "desy", (5, 10, 5, 20))


def test_ensure_site_creates_once_and_updates_fields(db_session):
    s = db_session
    first = sites.ensure_site(s, "kek", backend="slurm", signoff_policy="manual")
    again = sites.ensure_site(s, "kek", backend="lsf")
    assert first.id == again.id and again.backend == "lsf" and again.signoff_policy == "manual"
    with pytest.raises(InvalidValue, match="no settable field"):
        sites.ensure_site(s, "kek", colour="red")


def test_register_file_is_idempotent(db_session):
    s = db_session
    make_processing(s)
    args = dict(
        path="/skims/e1/r5/mumu.root",
        data_tag="hlt_mumu",
        data_format="raw",
        exp=1,
        run=5,
        run_info={"magnet": "Off", "data_quality": "Good"},
        n_events=10,
        size_bytes=20,
    )
    first, created = catalog.register_file(s, **args)
    again, created_again = catalog.register_file(s, **args)
    assert created and not created_again and first.id == again.id
    assert first.run.magnet == "Off"
    with pytest.raises(AlreadyExists, match="already registered for exp 1 run 5"):
        catalog.register_file(s, **{**args, "run": 6})


def test_files_for_selects_iov_tags_and_site_urls(db_session):
    s = db_session
    make_processing(s, "p", iov=(1, 3, 2, 1))
    sites.ensure_site(s, "desy")
    register_runs(s, [(1, 1), (1, 3), (1, 9), (2, 1), (2, 2)], tag="hlt_mumu", site="kek")
    register_runs(s, [(1, 3)], tag="bhabha")
    s.commit()
    rows = catalog.files_for(s, exp_low=1, run_low=3, exp_high=2, run_high=1, data_tags=["hlt_mumu"])
    assert [(run.exp, run.run) for _f, run, _url in rows] == [(1, 3), (1, 9), (2, 1)]
    assert all(url == f.path for f, _run, url in rows)
    with_site = catalog.files_for(
        s, exp_low=1, run_low=3, exp_high=2, run_high=1, data_tags=None, processing_name="p"
    )
    assert [(f.data_tag, url) for f, _r, url in with_site][:2] == [
        ("bhabha", "/skims/e1/r3/bhabha.root"),
        ("hlt_mumu", "root://se.kek//skims/e1/r3/hlt_mumu.root"),
    ]
    open_ended = catalog.files_for(s, exp_low=2, run_low=0, exp_high=-1, run_high=-1, data_tags=["hlt_mumu"])
    assert [(run.exp, run.run) for _f, run, _u in open_ended] == [(2, 1), (2, 2)]


def test_files_after_is_a_cursor(db_session):
    s = db_session
    files = register_runs(s, [(1, r) for r in range(1, 6)])
    s.commit()
    page = catalog.files_after(s, 0, limit=3)
    assert [f.id for f in page] == [f.id for f in files[:3]]
    rest = catalog.files_after(s, page[-1].id, limit=10)
    assert [f.id for f in rest] == [f.id for f in files[3:]]
    assert catalog.files_after(s, rest[-1].id) == []


def test_cdst_files_belong_to_their_processing(db_session):
    s = db_session
    make_processing(s, "p1")
    make_processing(s, "p2")
    for name in ("p1", "p2"):
        catalog.register_file(
            s,
            path=f"/cdst/{name}/e1r1.root",
            data_tag="hlt_mumu",
            data_format="cdst",
            exp=1,
            run=1,
            run_info={},
            n_events=1,
            size_bytes=1,
            processing_name=name,
        )
    rows = catalog.files_for(
        s,
        exp_low=1,
        run_low=0,
        exp_high=1,
        run_high=-1,
        data_tags=None,
        data_format="cdst",
        processing_name="p2",
    )
    assert [url for _f, _r, url in rows] == ["/cdst/p2/e1r1.root"]


def test_register_files_in_bulk_keeps_the_rules_of_one_by_one(db_session):
    s = db_session
    make_processing(s)
    entry = dict(data_tag="hlt_mumu", data_format="raw", exp=1, n_events=10, size_bytes=20)
    batch = [
        {**entry, "path": f"/skims/e1/r{r}/f{i}.root", "run": r, "run_info": {"magnet": "Off"}}
        for r in range(1, 4)
        for i in range(300)
    ]
    batch.append(dict(batch[0]))  # the same path twice in one batch counts once
    assert catalog.register_files(s, batch) == 900
    assert catalog.register_files(s, batch) == 0  # again: harmless
    s.commit()
    rows = catalog.files_for(s, exp_low=1, run_low=0, exp_high=1, run_high=-1, data_tags=None)
    assert len(rows) == 900 and {run.magnet for _f, run, _u in rows} == {"Off"}
    assert [f.path for f in catalog.files_after(s, 0, limit=2)] == [
        "/skims/e1/r1/f0.root",
        "/skims/e1/r1/f1.root",
    ]
    # run metadata is brought up to date; a known path for another run is refused, the batch with it
    more = [{**entry, "path": "/skims/e1/r4/new.root", "run": 4, "run_info": {}}]
    moved = {**batch[0], "run": 2, "run_info": {"magnet": "On"}}
    with pytest.raises(AlreadyExists, match=r"/skims/e1/r1/f0.root is already registered for exp 1 run 1"):
        catalog.register_files(s, [*more, moved])
    s.rollback()
    assert catalog.register_files(s, [{**batch[1], "run_info": {"magnet": "On", "data_quality": "Bad"}}]) == 0
    run1 = catalog.files_for(s, exp_low=1, run_low=1, exp_high=1, run_high=1, data_tags=None)[0][1]
    assert (run1.magnet, run1.data_quality) == ("On", "Bad")
    assert (
        catalog.runs_in(s, exp_low=1, run_low=4, exp_high=1, run_high=4) == []
    )  # nothing of the refused batch
    with pytest.raises(InvalidValue, match="data_format must be one of"):
        catalog.register_files(s, [{**more[0], "data_format": "root"}])
