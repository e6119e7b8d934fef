"""The conditions-database step: a finished processing's signed-off payloads become a staging tag."""

from datetime import timedelta

from b2cal_assets.cli import main
from b2cal_assets.db.repo import calibrations
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import parse_database_txt
from b2cal_assets.loop.service import AUTO_USER
from b2cal_assets.loop.staging import problems_file, staging_dir
from b2cal_assets_tests.loop.conftest import T0
from b2cal_assets_tests.loop.helpers import audit_actions, fake_run


def finish_all(loop, toy_b_iov=None):
    loop.tick(now=T0)
    for name, payload, iov in (
        ("toy_a", "ToyA", None),
        ("toy_b", "ToyB", toy_b_iov),
        ("toy_c", "ToyC", None),
    ):
        if name == "toy_c":
            with loop.session() as s:  # the cDST production is not what this test is about
                calibrations.update_calibration(s, "prompt_now", "cdst", state="signed_off")
        loop.tick(now=T0)
        fake_run(loop, "prompt_now", name, {payload: {"value": [1.0]}}, iov=iov)
        loop.sign_off("prompt_now", name, decision="accept", by=AUTO_USER, automatic=True)
    report = loop.tick(now=T0 + timedelta(minutes=1))
    # the tick only marks the finished processing; the staging sensor copies the payloads
    assert report.staging == [] and not (staging_dir("prompt_now") / "database.txt").exists()
    return report, loop.export_due_staging()


def test_finished_processing_exports_its_staging_tag(loop, capsys):
    report, exported = finish_all(loop)
    assert report.finished_processings == ["prompt_now"]
    (staged,) = exported
    assert loop.export_due_staging() == []  # once per finish
    assert staged.ok and staged.directory == staging_dir("prompt_now")
    entries = parse_database_txt((staged.directory / "database.txt").read_text())
    assert sorted((e.name, e.revision, tuple(e.iov)) for e in entries) == [
        ("ToyA", 1, (1, 1, 1, 2)),
        ("ToyB", 1, (1, 1, 1, 2)),
        ("ToyC", 1, (1, 1, 1, 2)),
    ]
    assert all((staged.directory / e.filename).is_file() for e in entries)
    assert (staged.directory / "tag.json").is_file()
    assert [a for _u, a, _d in audit_actions(loop, "prompt_now") if a.startswith("staging")] == [
        "staging_export"
    ]

    assert main(["payloads", "staging", "prompt_now"]) == 0
    out = capsys.readouterr().out
    assert "staging tag staging_prompt_now" in out and "ToyB" in out

    # building again keeps the earlier export (moved aside) and replaces it
    again = loop.export_staging("prompt_now", by="mgr")
    assert again.ok and len(list((staging_dir("prompt_now").parent / ".history").iterdir())) == 1


def test_a_gap_is_reported_and_nothing_is_exported(loop, capsys):
    report, exported = finish_all(loop, toy_b_iov=IoV(1, 2, 1, 2))  # ToyB misses run 1
    assert report.finished_processings == ["prompt_now"]  # the loop is not stopped by it
    (staged,) = exported
    assert not staged.ok and staged.directory is None
    assert any("ToyB: gap from the processing's start 1,1" in p for p in staged.problems)
    assert problems_file("prompt_now").is_file() and not staging_dir("prompt_now").exists()
    assert main(["payloads", "staging", "prompt_now"]) == 0
    assert "was not exported" in capsys.readouterr().out
