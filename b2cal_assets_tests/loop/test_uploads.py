"""Payload replacement: download and upload round-trip, new revisions, checks again, bad uploads change nothing."""

import io
import tarfile
from datetime import timedelta

import pytest

from b2cal_assets import home
from b2cal_assets.caf.payload_io import read_payload, write_payload
from b2cal_assets.cli import main
from b2cal_assets.domain.iov import ExpRun, IoV
from b2cal_assets.domain.outputdb import PayloadEntry, format_database_txt
from b2cal_assets.loop.service import LoopError
from b2cal_assets_tests.loop.conftest import T0, add_processing, add_site
from b2cal_assets_tests.loop.helpers import audit_actions, fake_run, messages, snapshot_db, snapshot_files


def tar_gz(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def payload_bytes(tmp_path, name="ToyA", revision=1, mean=3.0) -> bytes:
    path = write_payload(tmp_path / f"dbstore_{name}_rev_{revision}.root", {"mean": [mean]})
    return path.read_bytes()


@pytest.fixture
def finished(loop):
    loop.tick(now=T0)
    fake_run(loop, "prompt_now", "toy_a", {"ToyA": {"mean": [2.5]}})
    return loop


def test_download_then_upload_round_trips_as_a_new_revision(finished, tmp_path, capsys):
    loop = finished
    (old,) = loop.current_payloads("prompt_now", "toy_a")
    archive = tmp_path / "toy_a.tar.gz"
    assert main(["payloads", "download", "prompt_now", "toy_a", "-o", str(archive)]) == 0
    assert main(["payloads", "upload", "prompt_now", "toy_a", str(archive), "--user", "alice"]) == 0
    out = capsys.readouterr().out
    assert "upload stored as attempt 2" in out and "ToyA rev 1" in out

    (new,) = loop.current_payloads("prompt_now", "toy_a")
    assert (new.name, new.revision, new.source, new.checksum) == (
        "ToyA",
        2,
        "upload",
        old.checksum,
    )
    assert new.file.startswith(str(home.payload_dir("prompt_now", "toy_a", 2)))
    assert read_payload(old.file)["mean"][0] == pytest.approx(2.5)  # the old revision is kept
    assert read_payload(new.file)["mean"][0] == pytest.approx(2.5)
    assert loop.step_states("prompt_now")["toy_a"] == "finished"
    (upload,) = [
        d for u, a, d in audit_actions(loop, "prompt_now", "toy_a") if a == "upload_payloads" and u == "alice"
    ]
    assert upload["payloads"] == ["ToyA rev 2"] and upload["replaced"] == ["ToyA rev 1"]
    (msg,) = [m for m in messages(loop, "prompt_now", "toy_a") if m.kind == "uploaded"]
    assert "alice uploaded replacement payloads" in msg.body and "ToyA rev 2" in msg.body

    # the checks run again: one checks-and-sign-off launch for the upload's attempt at this automatic site
    (launch,) = [x for x in loop.tick(now=T0 + timedelta(minutes=1)).launches if x.processing == "prompt_now"]
    assert (launch.step, launch.reason, launch.attempt, launch.automatic_signoff) == (
        "toy_a",
        "signoff",
        2,
        True,
    )
    assert launch.checks_only


def test_upload_at_a_manual_site_reruns_only_the_checks(loop, tmp_path):
    add_site("manual_site", policy="manual")
    add_processing("prompt_manual", "manual_site")
    loop.tick(now=T0)
    fake_run(loop, "prompt_manual", "toy_a", {"ToyA": {"mean": [2.5]}})
    assert not [
        x for x in loop.tick(now=T0).launches if x.processing == "prompt_manual"
    ]  # the expert signs off
    archive = tar_gz(
        tmp_path / "fix.tar.gz",
        {
            "database.txt": format_database_txt([PayloadEntry("ToyA", 1, IoV(1, 1, 1, 2))]).encode(),
            "dbstore_ToyA_rev_1.root": payload_bytes(tmp_path, mean=3.0),
        },
    )
    loop.upload_payloads("prompt_manual", "toy_a", archive, by="alice")
    (launch,) = [x for x in loop.tick(now=T0).launches if x.processing == "prompt_manual"]
    assert (launch.reason, launch.automatic_signoff) == ("checks", False)


BAD_UPLOADS = {
    "not an archive": (
        lambda tmp: (tmp / "x.tar.gz").write_text("hello") and tmp / "x.tar.gz",
        "not a tar.gz or zip",
    ),
    "foreign payload": (
        lambda tmp: tar_gz(
            tmp / "a.tar.gz",
            {
                "database.txt": format_database_txt([PayloadEntry("ToyB", 1, IoV(1, 1, 1, 2))]).encode(),
                "dbstore_ToyB_rev_1.root": payload_bytes(tmp, "ToyB"),
            },
        ),
        "ToyB is not produced by this calibration",
    ),
    "iov outside": (
        lambda tmp: tar_gz(
            tmp / "a.tar.gz",
            {
                "database.txt": format_database_txt([PayloadEntry("ToyA", 1, IoV(2, 1, 2, 5))]).encode(),
                "dbstore_ToyA_rev_1.root": payload_bytes(tmp),
            },
        ),
        "outside the processing's IoV",
    ),
    "escaping path": (
        lambda tmp: tar_gz(tmp / "a.tar.gz", {"../database.txt": b"x"}),
        "'..' is not allowed",
    ),
    "unreadable root file": (
        lambda tmp: tar_gz(
            tmp / "a.tar.gz",
            {
                "database.txt": format_database_txt([PayloadEntry("ToyA", 1, IoV(1, 1, 1, 2))]).encode(),
                "dbstore_ToyA_rev_1.root": b"not root at all",
            },
        ),
        "not a readable payload ROOT file",
    ),
    "missing database.txt": (
        lambda tmp: tar_gz(tmp / "a.tar.gz", {"dbstore_ToyA_rev_1.root": payload_bytes(tmp)}),
        "database.txt is missing",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_a_bad_upload_changes_nothing(finished, tmp_path, case):
    make, reason = BAD_UPLOADS[case]
    archive = make(tmp_path)
    before_db, before_files = snapshot_db(finished), snapshot_files(home.b2cal_home())
    with pytest.raises(LoopError, match="upload refused, nothing was changed") as refused:
        finished.upload_payloads("prompt_now", "toy_a", archive, by="alice")
    assert reason in str(refused.value)
    assert snapshot_db(finished) == before_db
    assert snapshot_files(home.b2cal_home()) == before_files


def test_too_big_and_too_early_uploads_are_refused_by_the_cli(finished, tmp_path, capsys):
    archive = tar_gz(
        tmp_path / "a.tar.gz",
        {
            "database.txt": format_database_txt([PayloadEntry("ToyA", 1, IoV(1, 1, 1, 2))]).encode(),
            "dbstore_ToyA_rev_1.root": payload_bytes(tmp_path),
        },
    )
    before = snapshot_db(finished)
    assert main(["payloads", "upload", "prompt_now", "toy_a", str(archive), "--max-bytes", "100"]) == 2
    assert "larger than the limit of 100 bytes" in capsys.readouterr().err
    assert main(["payloads", "upload", "prompt_now", "toy_b", str(archive)]) == 2
    assert "toy_b in prompt_now is waiting" in capsys.readouterr().err
    assert main(["payloads", "upload", "prompt_now", "toy_a", str(tmp_path / "nope.tar.gz")]) == 2
    assert "no archive at" in capsys.readouterr().err
    assert snapshot_db(finished) == before


def two_iov_run(loop, tmp_path):
    """toy_a finished with ToyA in two IoVs, run 1 (rev 1) and run 2 (rev 2), as a run-by-run job writes."""
    from b2cal_assets.caf.localdb import write_outputdb

    loop.tick(now=T0)
    ticket = loop.begin_attempt("prompt_now", "toy_a", submitted_by="auto", expert_config={}, job_config={})
    ticket.workdir.mkdir(parents=True, exist_ok=True)
    outputdb = ticket.workdir / "job" / "outputdb"
    written = write_outputdb(
        outputdb, [], [("ToyA", IoV(1, 1, 1, 1), {"mean": [1.0]}), ("ToyA", IoV(1, 2, 1, 2), {"mean": [2.0]})]
    )
    loop.finish_attempt(ticket, outputdb, written, iterations=1)
    return loop


def current_by_iov(loop):
    return {
        tuple(p.iov): (p.revision, read_payload(p.file)["mean"][0])
        for p in loop.current_payloads("prompt_now", "toy_a")
    }


def test_a_downloaded_archive_with_several_iovs_goes_back_as_is(loop, tmp_path, capsys):
    two_iov_run(loop, tmp_path)
    archive = tmp_path / "toy_a.tar.gz"
    assert main(["payloads", "download", "prompt_now", "toy_a", "-o", str(archive)]) == 0
    assert main(["payloads", "upload", "prompt_now", "toy_a", str(archive), "--user", "alice"]) == 0
    capsys.readouterr()
    assert current_by_iov(loop) == {(1, 1, 1, 1): (3, 1.0), (1, 2, 1, 2): (4, 2.0)}


def test_uploading_one_iov_replaces_only_that_iov_and_keeps_the_others(loop, tmp_path, capsys):
    two_iov_run(loop, tmp_path)
    archive = tar_gz(
        tmp_path / "fix.tar.gz",
        {
            "database.txt": format_database_txt([PayloadEntry("ToyA", 2, IoV(1, 2, 1, 2))]).encode(),
            "dbstore_ToyA_rev_2.root": payload_bytes(tmp_path, revision=2, mean=5.0),
        },
    )
    result = loop.upload_payloads("prompt_now", "toy_a", archive, by="alice")
    assert result.replaced == ["ToyA rev 2"]
    assert current_by_iov(loop) == {(1, 1, 1, 1): (1, 1.0), (1, 2, 1, 2): (3, 5.0)}
    (upload,) = [d for _u, a, d in audit_actions(loop, "prompt_now", "toy_a") if a == "upload_payloads"]
    assert upload["payloads"] == ["ToyA rev 3"] and upload["replaced"] == ["ToyA rev 2"]

    # the download after a partial replacement holds every current revision, and goes back in as-is
    again = tmp_path / "again.tar.gz"
    assert main(["payloads", "download", "prompt_now", "toy_a", "-o", str(again)]) == 0
    with tarfile.open(again) as tar:
        assert sorted(tar.getnames()) == [
            "database.txt",
            "dbstore_ToyA_rev_1.root",
            "dbstore_ToyA_rev_3.root",
        ]
    assert main(["payloads", "upload", "prompt_now", "toy_a", str(again), "--user", "alice"]) == 0
    capsys.readouterr()
    assert current_by_iov(loop) == {(1, 1, 1, 1): (4, 1.0), (1, 2, 1, 2): (5, 5.0)}


def test_validity_fails_when_a_run_of_the_processing_has_no_payload(loop, tmp_path):
    from b2cal_assets.loop.payload_checks import validity_problems

    two_iov_run(loop, tmp_path)
    settings = loop.scripts.calibrations["toy_a"].settings
    assert validity_problems(loop, "prompt_now", "toy_a", settings.produced_payloads)[0] == []
    with loop.session() as s:  # as the old upload left it: run 1's revision superseded, nothing in its place
        from sqlalchemy import update

        from b2cal_assets.db.models import Payload

        s.execute(update(Payload).where(Payload.run_low == 1).values(superseded=True))
    problems, _summary = validity_problems(loop, "prompt_now", "toy_a", settings.produced_payloads)
    assert problems == ["payload ToyA has no current revision for run 1,1"]


def test_an_upload_that_would_leave_a_run_without_a_payload_is_refused(finished, tmp_path, capsys):
    archive = tar_gz(  # the current ToyA covers runs 1-2; this replacement covers run 2 only
        tmp_path / "half.tar.gz",
        {
            "database.txt": format_database_txt([PayloadEntry("ToyA", 1, IoV(1, 2, 1, 2))]).encode(),
            "dbstore_ToyA_rev_1.root": payload_bytes(tmp_path, mean=3.0),
        },
    )
    before_db, before_files = snapshot_db(finished), snapshot_files(home.b2cal_home())
    assert main(["payloads", "upload", "prompt_now", "toy_a", str(archive), "--user", "alice"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "upload refused, nothing was changed" in err[0]
    assert "would leave run 1,1 without ToyA" in err[0] and "ToyA rev 1 (IoV 1,1,1,2)" in err[0]
    assert snapshot_db(finished) == before_db
    assert snapshot_files(home.b2cal_home()) == before_files


def test_after_a_partial_upload_downstream_jobs_read_the_uploaded_revision(loop, tmp_path):
    from b2cal_assets.caf.localdb import ConditionsChain
    from b2cal_assets.db.repo import calibrations

    for _ in range(9):  # attempt 9 is the job's, attempt 10 the upload's: the chain is not in name order
        two_iov_run(loop, tmp_path)
    archive = tar_gz(
        tmp_path / "fix.tar.gz",
        {
            "database.txt": format_database_txt([PayloadEntry("ToyA", 2, IoV(1, 2, 1, 2))]).encode(),
            "dbstore_ToyA_rev_2.root": payload_bytes(tmp_path, revision=2, mean=5.0),
        },
    )
    assert loop.upload_payloads("prompt_now", "toy_a", archive, by="alice").attempt == 10
    with loop.session() as s:
        calibrations.update_calibration(s, "prompt_now", "toy_a", state="signed_off")
    chain = ConditionsChain(loop.database_chain("prompt_now", "toy_b"))
    assert chain.at(ExpRun(1, 1)).get("ToyA")["mean"][0] == pytest.approx(1.0)
    assert chain.at(ExpRun(1, 2)).get("ToyA")["mean"][0] == pytest.approx(5.0)
