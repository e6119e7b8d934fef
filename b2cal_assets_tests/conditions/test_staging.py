"""The staging tag: identical payloads stored once, overlaps and gaps reported by name, published is final."""

import shutil

import numpy as np
import pytest

from b2cal_assets.caf.payload_io import md5sum, read_payload, write_payload
from b2cal_assets.conditions.staging import (
    SignedOffPayload,
    StagingError,
    StagingState,
    StagingStateError,
    StagingTag,
)
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import parse_database_txt

PROCESSING_IOV = IoV(0, 1, 0, 100)


@pytest.fixture
def make(tmp_path):
    store = tmp_path / "store"
    store.mkdir()

    def make(name, revision, iov, value=1.0, calibration="beamspot", where="attempt_1"):
        directory = store / calibration / where
        directory.mkdir(parents=True, exist_ok=True)
        path = write_payload(directory / f"dbstore_{name}_rev_{revision}.root", {"value": np.array([value])})
        return SignedOffPayload(name, revision, md5sum(path), IoV(*iov), path, calibration)

    return make


def full_set(make):
    return [
        make("BeamSpot", 1, (0, 1, 0, 50), 1.0),
        make("BeamSpot", 2, (0, 51, -1, -1), 2.0),
        make("ECLGain", 1, (0, 1, -1, -1), 3.0, calibration="ecl"),
    ]


def test_consistent_payloads_export_in_the_framework_layout(make, tmp_path):
    tag = StagingTag.build("staging_prompt_2024a", full_set(make), PROCESSING_IOV)
    out = tag.export(tmp_path / "globaltags" / "staging_prompt_2024a")
    entries = parse_database_txt((out / "database.txt").read_text())
    assert [(e.name, e.revision, str(e.iov)) for e in entries] == [
        ("BeamSpot", 1, "0,1,0,50"),
        ("BeamSpot", 2, "0,51,-1,-1"),
        ("ECLGain", 1, "0,1,-1,-1"),
    ]
    assert sorted(p.name for p in out.glob("*.root")) == [
        "dbstore_BeamSpot_rev_1.root",
        "dbstore_BeamSpot_rev_2.root",
        "dbstore_ECLGain_rev_1.root",
    ]
    assert read_payload(out / "dbstore_ECLGain_rev_1.root")["value"][0] == 3.0
    assert StagingTag.load(out).state is StagingState.OPEN
    assert [p.name for p in out.parent.iterdir()] == ["staging_prompt_2024a"]  # no temporary directory left


def test_identical_payloads_are_stored_once(make, tmp_path):
    # the same file signed off as two revisions (e.g. an expert re-uploading the payload they downloaded)
    first = make("BeamSpot", 1, (0, 1, 0, 50), 1.0)
    copy = first.file.parent.parent / "upload_1" / "dbstore_BeamSpot_rev_3.root"
    copy.parent.mkdir()
    shutil.copyfile(first.file, copy)
    again = SignedOffPayload("BeamSpot", 3, md5sum(copy), IoV(0, 51, -1, -1), copy, "beamspot")
    assert first.checksum == again.checksum
    tag = StagingTag.build("t", [first, again, first], PROCESSING_IOV)
    out = tag.export(tmp_path / "t")
    assert [p.name for p in out.glob("*.root")] == ["dbstore_BeamSpot_rev_1.root"]
    assert (
        out / "database.txt"
    ).read_text() == "dbstore/BeamSpot 1 0,1,0,50\ndbstore/BeamSpot 1 0,51,-1,-1\n"


def test_overlapping_iovs_name_both_payloads(make):
    with pytest.raises(StagingError) as info:
        StagingTag.build(
            "t",
            [make("BeamSpot", 1, (0, 1, 0, 60), 1.0), make("BeamSpot", 2, (0, 50, -1, -1), 2.0)],
            PROCESSING_IOV,
        )
    [problem] = info.value.problems
    assert problem == (
        "BeamSpot revision 1 from beamspot IoV 0,1,0,60 overlaps BeamSpot revision 2 from beamspot IoV 0,50,-1,-1"
    )


def test_same_iov_with_different_content_is_a_conflict(make):
    with pytest.raises(StagingError, match="have the same IoV"):
        StagingTag.build(
            "t",
            [make("BeamSpot", 1, (0, 1, -1, -1), 1.0), make("BeamSpot", 2, (0, 1, -1, -1), 2.0)],
            PROCESSING_IOV,
        )


def test_gap_between_iovs_names_the_payloads(make):
    payloads = [make("BeamSpot", 1, (0, 1, 0, 40), 1.0), make("BeamSpot", 2, (0, 45, -1, -1), 2.0)]
    with pytest.raises(StagingError) as info:
        StagingTag.build("t", payloads, PROCESSING_IOV)
    assert info.value.problems == [
        "BeamSpot: gap between BeamSpot revision 1 from beamspot IoV 0,1,0,40 "
        "and BeamSpot revision 2 from beamspot IoV 0,45,-1,-1"
    ]


def test_gaps_at_the_start_and_end_of_the_processing(make):
    payloads = [make("ECLGain", 1, (0, 5, 0, 90), calibration="ecl")]
    with pytest.raises(StagingError) as info:
        StagingTag.build("t", payloads, PROCESSING_IOV)
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].startswith(
        "ECLGain: gap from the processing's start 0,1 to ECLGain revision 1 from ecl"
    )
    assert (
        problems[1] == "ECLGain: gap after ECLGain revision 1 from ecl IoV 0,5,0,90 to the processing's 0,100"
    )


def test_every_problem_is_reported_at_once(make):
    payloads = [
        make("BeamSpot", 1, (0, 1, 0, 60), 1.0),
        make("BeamSpot", 2, (0, 50, -1, -1), 2.0),
        make("ECLGain", 1, (0, 1, 0, 40), 3.0, calibration="ecl"),
        make("ECLGain", 2, (0, 42, -1, -1), 4.0, calibration="ecl"),
        make("Timing", 1, (1, 0, -1, -1), 5.0, calibration="cdc"),
    ]
    with pytest.raises(StagingError) as info:
        StagingTag.build("t", payloads, PROCESSING_IOV)
    text = str(info.value)
    assert "BeamSpot revision 1 from beamspot IoV 0,1,0,60 overlaps" in text
    assert "ECLGain: gap between" in text
    assert "Timing revision 1 from cdc IoV 1,0,-1,-1 is outside the processing's IoV 0,1,0,100" in text


def test_next_experiment_from_run_zero_continues(make):
    payloads = [make("BeamSpot", 1, (7, 1, 7, 2000), 1.0), make("BeamSpot", 2, (8, 0, -1, -1), 2.0)]
    tag = StagingTag.build("t", payloads, IoV(7, 1, -1, -1))
    assert [e.revision for e in tag.entries] == [1, 2]


def test_same_revision_with_two_contents_is_refused(make, tmp_path):
    a = make("BeamSpot", 1, (0, 1, 0, 50), 1.0)
    b = make("BeamSpot", 1, (0, 51, -1, -1), 2.0, where="attempt_2")
    with pytest.raises(StagingError, match="BeamSpot revision 1 has two different contents"):
        StagingTag.build("t", [a, b], PROCESSING_IOV)


def test_a_file_changed_since_signoff_is_not_exported(make, tmp_path):
    payloads = full_set(make)
    tag = StagingTag.build("t", payloads, PROCESSING_IOV)
    write_payload(payloads[0].file, {"value": np.array([99.0])})
    with pytest.raises(StagingError, match="changed since sign-off"):
        tag.export(tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_states_go_forward_and_published_is_immutable(make, tmp_path):
    tag = StagingTag.build("t", full_set(make), PROCESSING_IOV)
    out = tag.export(tmp_path / "t")
    with pytest.raises(StagingStateError, match="cannot go from OPEN to PUBLISHED"):
        tag.move_to(StagingState.PUBLISHED)
    tag.move_to("TESTING")
    with pytest.raises(StagingStateError, match="TESTING: change its payloads needs it OPEN"):
        tag.replace_payloads(full_set(make))
    tag.move_to(StagingState.VALIDATED)
    tag.move_to(StagingState.PUBLISHED)
    assert StagingTag.load(out).state is StagingState.PUBLISHED
    for action in (
        lambda: tag.move_to(StagingState.OPEN),
        lambda: tag.replace_payloads(full_set(make)),
        lambda: tag.export(tmp_path / "again"),
    ):
        with pytest.raises(StagingStateError, match="PUBLISHED and immutable"):
            action()
    loaded = StagingTag.load(out)
    with pytest.raises(StagingStateError, match="PUBLISHED and immutable"):
        loaded.move_to(StagingState.OPEN)
    assert all(not (f.stat().st_mode & 0o222) for f in out.iterdir())  # read-only on disk too


def test_a_failed_test_reopens_the_tag_for_new_payloads(make):
    tag = StagingTag.build("t", full_set(make), PROCESSING_IOV)
    tag.move_to(StagingState.TESTING)
    tag.move_to(StagingState.OPEN)
    fixed = [
        *full_set(make)[:2],
        make("ECLGain", 2, (0, 1, -1, -1), 7.0, calibration="ecl", where="upload_1"),
    ]
    tag.replace_payloads(fixed)
    assert [(e.name, e.revision) for e in tag.entries] == [("BeamSpot", 1), ("BeamSpot", 2), ("ECLGain", 2)]


def test_export_never_overwrites(make, tmp_path):
    existing = tmp_path / "t"
    existing.mkdir()
    (existing / "database.txt").write_text("keep me\n")
    with pytest.raises(FileExistsError):
        StagingTag.build("t", full_set(make), PROCESSING_IOV).export(existing)
    assert (existing / "database.txt").read_text() == "keep me\n"
