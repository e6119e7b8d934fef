"""The payload store holds whole copies that the database knows of: never a half file, never an orphan."""

import pytest

from b2cal_assets.caf.localdb import write_outputdb
from b2cal_assets.db.repo import attempts
from b2cal_assets.files import WriteError
from b2cal_assets.loop import attempt_rules
from b2cal_assets_tests.fixtures.disk import fill
from b2cal_assets_tests.loop.conftest import T0


def _finished_job(loop, tmp_path):
    ticket = loop.begin_attempt("prompt_now", "toy_a", submitted_by="auto", expert_config={}, job_config={})
    iov = loop.processing_iov("prompt_now")
    written = write_outputdb(tmp_path / "outputdb", [], [("ToyA", iov, {"mean": [1.5] * 20_000})])
    return ticket, written


def _attempt_state(loop, ticket):
    with loop.session() as s:
        return attempts.get_attempt(s, ticket.attempt_id).state


def test_a_copy_the_database_did_not_record_is_removed(loop, tmp_path, monkeypatch):
    loop.tick(now=T0)
    ticket, written = _finished_job(loop, tmp_path)

    def database_down(*args, **kwargs):
        raise ConnectionError("calibration database went away")

    monkeypatch.setattr(attempt_rules.payloads, "record_payloads", database_down)
    with pytest.raises(ConnectionError):
        loop.finish_attempt(ticket, tmp_path / "outputdb", written, iterations=1)
    assert not (ticket.payload_dir / "outputdb").exists()
    assert _attempt_state(loop, ticket) == "running"  # nothing recorded: the attempt can be resumed


def test_a_full_payload_store_names_the_path_and_leaves_nothing_half(loop, tmp_path, small_disk, b2cal_home):
    loop.tick(now=T0)
    store = b2cal_home / "payloads"
    assert not store.exists()
    store.symlink_to(small_disk)
    ticket, written = _finished_job(loop, tmp_path)
    ticket.payload_dir.mkdir(parents=True)
    fill(small_disk)
    with pytest.raises(WriteError, match=f"cannot write {ticket.payload_dir / 'outputdb'}: No space left"):
        loop.finish_attempt(ticket, tmp_path / "outputdb", written, iterations=1)
    assert list(ticket.payload_dir.iterdir()) == []
    assert _attempt_state(loop, ticket) == "running"
