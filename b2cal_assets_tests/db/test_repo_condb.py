"""The conditions-database upload rows on every engine: one row per payload IoV, due and backoff."""

from datetime import datetime, timedelta

import pytest

from b2cal_assets.db.errors import InvalidValue
from b2cal_assets.db.repo import condb
from b2cal_assets_tests.db.factories import make_processing

NOW = datetime(2026, 12, 2, 12, 0)
LONG_NAME = "P" * 128  # the longest payload name: the unique key fits every engine's index limit


def planned(name="ToyA", checksum="a" * 32, iov=(1, 1, 1, 2)):
    return ("toy_a", name, 1, checksum, iov, f"/data/{name}.root")


def test_planning_the_same_payload_iovs_again_adds_no_rows(db_session):
    s = db_session
    make_processing(s, "p1")
    tag = condb.ensure_condb_tag(s, "p1", "staging_p1")
    first = condb.plan_uploads(s, tag, [planned(), planned(LONG_NAME), planned(iov=(1, 3, -1, -1))])
    s.commit()
    again = condb.plan_uploads(s, tag, [planned(iov=(1, 3, -1, -1)), planned()])
    s.commit()
    assert [r.id for r in again] == [first[2].id, first[0].id]
    assert len(condb.list_uploads(s, "p1")) == 3
    condb.set_upload(s, first[0].id, "done", payload_id=7, iov_id=8)
    s.commit()
    (done,) = [r for r in condb.list_uploads(s, "p1") if r.state == "done"]
    assert (done.name, done.payload_id, done.iov_id) == ("ToyA", 7, 8)
    with pytest.raises(InvalidValue, match="an upload state must be one of"):
        condb.set_upload(s, first[0].id, "uploaded")


def test_a_due_upload_waits_for_its_backoff(db_session):
    s = db_session
    make_processing(s, "p1")
    make_processing(s, "p2")
    condb.mark_condb_due(s, "p1", "staging_p1")
    condb.mark_condb_due(s, "p2", "staging_p2")
    condb.update_condb_tag(s, "p2", next_try_at=NOW + timedelta(minutes=1), outcome="unavailable")
    s.commit()
    assert condb.due_condb_processings(s, NOW) == ["p1"]
    assert condb.due_condb_processings(s, NOW + timedelta(minutes=1)) == ["p1", "p2"]
    condb.mark_condb_due(s, "p2", "staging_p2")  # a new finish or sign-off: at once
    assert condb.due_condb_processings(s, NOW) == ["p1", "p2"]
    assert set(condb.uploads_by_processing(s, ["p1", "p2", "p3"])) == {"p1", "p2"}


def test_a_processing_keeps_the_tag_it_was_uploaded_to(db_session):
    s = db_session
    make_processing(s, "p1")
    condb.ensure_condb_tag(s, "p1", "staging_p1")
    with pytest.raises(InvalidValue, match="uploaded to the staging tag staging_p1; it is not uploaded again as v2"):
        condb.ensure_condb_tag(s, "p1", "v2")
