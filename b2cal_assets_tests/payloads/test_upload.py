"""Replacement uploads: a good one installs in one step; every bad one is refused, naming why, changing nothing."""

import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from b2cal_assets.caf.payload_io import md5sum, read_payload, write_payload
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import parse_database_txt
from b2cal_assets.payloads.archive import make_archive
from b2cal_assets.payloads.upload import UploadRejected, check_upload, install_upload

PROCESSING_IOV = IoV(0, 1, 0, 100)
PRODUCED = {"BeamSpot", "BeamSize"}
MB = 1 << 20


def payload_bytes(tmp_path: Path, values=(1.0, 2.0, 3.0)) -> bytes:
    path = write_payload(tmp_path / f"p_{len(list(tmp_path.iterdir()))}.root", {"position": np.array(values)})
    return path.read_bytes()


def outputdb(tmp_path: Path) -> Path:
    db = tmp_path / "outputdb"
    db.mkdir()
    write_payload(db / "dbstore_BeamSpot_rev_1.root", {"position": np.array([0.1, 0.2, 0.3])})
    write_payload(db / "dbstore_BeamSpot_rev_2.root", {"position": np.array([0.4, 0.5, 0.6])})
    write_payload(db / "dbstore_BeamSize_rev_1.root", {"size": np.array([10.0, 0.2])})
    (db / "database.txt").write_text(
        "dbstore/BeamSpot 1 0,1,0,50\ndbstore/BeamSpot 2 0,51,0,100\ndbstore/BeamSize 1 0,1,-1,-1\n"
    )
    return db


def tar_gz(path: Path, members: list[tuple[str, bytes | None, str]]) -> Path:
    """members: (name, content, type) with type file | dir | symlink | hardlink | fifo."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(content or b"")
                tar.addfile(info, io.BytesIO(content or b""))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.linkname = (content or b"").decode()
            tar.addfile(info)
    return path


def good_members(tmp_path: Path, prefix: str = "") -> list[tuple[str, bytes, str]]:
    return [
        (f"{prefix}database.txt", b"dbstore/BeamSpot 3 0,1,-1,-1\n", "file"),
        (f"{prefix}dbstore_BeamSpot_rev_3.root", payload_bytes(tmp_path), "file"),
    ]


def check(path: Path, **kwargs):
    options = {"produced_payloads": PRODUCED, "processing_iov": PROCESSING_IOV, "max_bytes": 5 * MB}
    options.update(kwargs)
    return check_upload(path, **options)


def rejected(path: Path, match: str, **kwargs) -> str:
    work = path.parent / "work"
    work.mkdir(exist_ok=True)
    with pytest.raises(UploadRejected, match=match) as info:
        check(path, work_dir=work, **kwargs)
    assert list(work.iterdir()) == []  # nothing unpacked is left behind
    return str(info.value)


# --- what goes through -------------------------------------------------------------------------


def test_downloaded_archive_goes_back_in_and_installs_as_a_new_revision(tmp_path):
    archive = make_archive(outputdb(tmp_path), tmp_path / "beamspot.tar.gz")
    with check(archive) as contents:
        assert [(p.name, p.revision, p.iov) for p in contents.payloads] == [
            ("BeamSpot", 1, IoV(0, 1, 0, 50)),
            ("BeamSpot", 2, IoV(0, 51, 0, 100)),
            ("BeamSize", 1, IoV(0, 1, -1, -1)),
        ]
        dest = tmp_path / "store" / "beamspot" / "upload_1"
        installed = install_upload(contents, dest, revisions={("BeamSpot", 1): 3, ("BeamSpot", 2): 4})
    assert installed.directory == dest
    assert sorted(f.name for f in dest.iterdir()) == [
        "database.txt",
        "dbstore_BeamSize_rev_1.root",
        "dbstore_BeamSpot_rev_3.root",
        "dbstore_BeamSpot_rev_4.root",
    ]
    entries = parse_database_txt((dest / "database.txt").read_text())
    assert [(e.name, e.revision, str(e.iov)) for e in entries] == [
        ("BeamSpot", 3, "0,1,0,50"),
        ("BeamSpot", 4, "0,51,0,100"),
        ("BeamSize", 1, "0,1,-1,-1"),
    ]
    np.testing.assert_array_equal(
        read_payload(dest / "dbstore_BeamSpot_rev_4.root")["position"], [0.4, 0.5, 0.6]
    )
    assert installed.payloads[0].checksum == md5sum(tmp_path / "outputdb" / "dbstore_BeamSpot_rev_1.root")
    assert not contents.directory.exists()


def test_archive_is_reproducible(tmp_path):
    db = outputdb(tmp_path)
    a = make_archive(db, tmp_path / "a.tar.gz").read_bytes()
    os.utime(db / "database.txt", (0, 12345))
    assert make_archive(db, tmp_path / "b.tar.gz").read_bytes() == a


def test_one_top_directory_and_zip_are_accepted(tmp_path):
    in_dir = tar_gz(
        tmp_path / "dir.tar.gz", [("outputdb/", None, "dir"), *good_members(tmp_path, "outputdb/")]
    )
    with check(in_dir) as contents:
        assert [p.name for p in contents.payloads] == ["BeamSpot"]
    archive = tmp_path / "up.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content, _ in good_members(tmp_path):
            z.writestr(name, content)
    with check(archive) as contents:
        assert contents.payloads[0].iov == IoV(0, 1, -1, -1)


# --- what is refused ---------------------------------------------------------------------------


def test_not_an_archive(tmp_path):
    path = tmp_path / "payloads.root"
    path.write_bytes(payload_bytes(tmp_path))
    rejected(path, "not a tar.gz or zip archive")


def test_gzip_that_is_not_a_tar(tmp_path):
    import gzip

    path = tmp_path / "up.tar.gz"
    path.write_bytes(gzip.compress(b"just some text, no tar headers here" * 20))
    rejected(path, "not a readable tar archive")


def test_truncated_archive(tmp_path):
    full = make_archive(outputdb(tmp_path), tmp_path / "full.tar.gz").read_bytes()
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(full[: len(full) // 2])
    rejected(path, "truncated or corrupt")


def test_database_txt_missing(tmp_path):
    path = tar_gz(tmp_path / "up.tar.gz", good_members(tmp_path)[1:])
    rejected(path, "database.txt is missing")


def test_files_outside_the_upload_directory(tmp_path):
    members = [
        *good_members(tmp_path, "outputdb/"),
        ("dbstore_BeamSize_rev_1.root", payload_bytes(tmp_path), "file"),
    ]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "outside directory 'outputdb'")


def test_nested_directories(tmp_path):
    members = [
        *good_members(tmp_path, "a/"),
        ("a/b/dbstore_BeamSize_rev_1.root", payload_bytes(tmp_path), "file"),
    ]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "nested directory")


def test_unexpected_file(tmp_path):
    members = [*good_members(tmp_path), ("notes.txt", b"my changes", "file")]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "unexpected file 'notes.txt'")


def test_path_traversal_with_dotdot(tmp_path):
    members = [*good_members(tmp_path), ("../dbstore_BeamSize_rev_1.root", payload_bytes(tmp_path), "file")]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), r"unsafe path .*'\.\.'")
    assert not (tmp_path / "dbstore_BeamSize_rev_1.root").exists()


def test_absolute_path(tmp_path):
    members = [*good_members(tmp_path), ("/tmp/dbstore_BeamSize_rev_1.root", payload_bytes(tmp_path), "file")]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "absolute paths are not allowed")


@pytest.mark.parametrize("name", ["../dbstore_BeamSize_rev_1.root", "..\\dbstore_BeamSize_rev_1.root"])
def test_path_traversal_in_a_zip(tmp_path, name):
    path = tmp_path / "up.zip"
    with zipfile.ZipFile(path, "w") as z:
        for member, content, _ in good_members(tmp_path):
            z.writestr(member, content)
        z.writestr(name, b"x")
    rejected(path, "unsafe path")


def test_symlink(tmp_path):
    members = [*good_members(tmp_path), ("dbstore_BeamSize_rev_1.root", b"/etc/passwd", "symlink")]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "is a link")


def test_hardlink(tmp_path):
    members = [*good_members(tmp_path), ("dbstore_BeamSize_rev_1.root", b"/etc/passwd", "hardlink")]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "is a link")


def test_symlink_in_a_zip(tmp_path):
    path = tmp_path / "up.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, content, _ in good_members(tmp_path):
            z.writestr(name, content)
        link = zipfile.ZipInfo("dbstore_BeamSize_rev_1.root")
        link.external_attr = 0o120777 << 16
        z.writestr(link, "/etc/passwd")
    rejected(path, "is a link")


def test_device_or_fifo(tmp_path):
    members = [*good_members(tmp_path), ("dbstore_BeamSize_rev_1.root", None, "fifo")]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "not a regular file")


def test_database_txt_syntax(tmp_path):
    members = [("database.txt", b"BeamSpot 3 0,1,-1,-1\n", "file"), good_members(tmp_path)[1]]
    message = rejected(tar_gz(tmp_path / "up.tar.gz", members), "database.txt line 1")
    assert "dbstore/" in message


def test_payload_the_calibration_does_not_produce(tmp_path):
    members = [
        ("database.txt", b"dbstore/ECLGain 1 0,1,-1,-1\n", "file"),
        ("dbstore_ECLGain_rev_1.root", payload_bytes(tmp_path), "file"),
    ]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), r"ECLGain is not produced .*BeamSize, BeamSpot")


def test_iov_outside_the_processing(tmp_path):
    members = [("database.txt", b"dbstore/BeamSpot 3 0,90,0,120\n", "file"), good_members(tmp_path)[1]]
    rejected(
        tar_gz(tmp_path / "up.tar.gz", members), r"IoV 0,90,0,120 is outside the processing's IoV 0,1,0,100"
    )


def test_iov_starting_before_the_processing(tmp_path):
    members = [("database.txt", b"dbstore/BeamSpot 3 0,0,-1,-1\n", "file"), good_members(tmp_path)[1]]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "outside the processing")


def test_overlapping_iovs_in_one_upload(tmp_path):
    text = b"dbstore/BeamSpot 3 0,1,0,60\ndbstore/BeamSpot 4 0,50,0,100\n"
    members = [
        ("database.txt", text, "file"),
        ("dbstore_BeamSpot_rev_3.root", payload_bytes(tmp_path), "file"),
        ("dbstore_BeamSpot_rev_4.root", payload_bytes(tmp_path), "file"),
    ]
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "overlaps")


def test_listed_root_file_missing(tmp_path):
    members = [("database.txt", b"dbstore/BeamSpot 3 0,1,-1,-1\ndbstore/BeamSize 2 0,1,-1,-1\n", "file")]
    members.append(good_members(tmp_path)[1])
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "no dbstore_BeamSize_rev_2.root")


def test_root_file_not_listed(tmp_path):
    members = [*good_members(tmp_path), ("dbstore_BeamSize_rev_1.root", payload_bytes(tmp_path), "file")]
    rejected(
        tar_gz(tmp_path / "up.tar.gz", members), "dbstore_BeamSize_rev_1.root is not listed in database.txt"
    )


def test_unreadable_root_file(tmp_path):
    members = [("database.txt", b"dbstore/BeamSpot 3 0,1,-1,-1\n", "file")]
    members.append(("dbstore_BeamSpot_rev_3.root", b"this is not ROOT" * 100, "file"))
    rejected(
        tar_gz(tmp_path / "up.tar.gz", members),
        "dbstore_BeamSpot_rev_3.root is not a readable payload ROOT file",
    )


def test_root_file_without_payload_tree(tmp_path):
    import uproot

    other = tmp_path / "other.root"
    with uproot.recreate(other) as f:
        f["histogram_only"] = "not a payload"
    members = [("database.txt", b"dbstore/BeamSpot 3 0,1,-1,-1\n", "file")]
    members.append(("dbstore_BeamSpot_rev_3.root", other.read_bytes(), "file"))
    rejected(tar_gz(tmp_path / "up.tar.gz", members), "not a readable payload ROOT file")


def test_per_file_size_limit(tmp_path):
    members = [*good_members(tmp_path)[:1], ("dbstore_BeamSpot_rev_3.root", b"\0" * 300_000, "file")]
    rejected(
        tar_gz(tmp_path / "up.tar.gz", members),
        "larger than the per-file limit of 100000",
        max_file_bytes=100_000,
    )


def test_tar_gz_bomb_stops_at_the_total_limit(tmp_path):
    members = [*good_members(tmp_path)[:1]]
    members += [(f"dbstore_BeamSpot_rev_{i}.root", b"\0" * (2 * MB), "file") for i in range(3, 8)]
    path = tar_gz(tmp_path / "bomb.tar.gz", members)
    assert path.stat().st_size < 100_000  # 10 MB of zeros packs small
    rejected(path, "unpacks to more than the limit of 3145728 bytes", max_bytes=3 * MB)


def test_zip_bomb_stops_at_the_total_limit(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("database.txt", "dbstore/BeamSpot 3 0,1,-1,-1\n")
        z.writestr("dbstore_BeamSpot_rev_3.root", b"\0" * (8 * MB))
    assert path.stat().st_size < 100_000
    rejected(path, "unpacks to more than the limit", max_bytes=2 * MB)


def test_archive_itself_too_large(tmp_path):
    path = make_archive(outputdb(tmp_path), tmp_path / "up.tar.gz")
    rejected(path, "larger than the limit of 1000 bytes", max_bytes=1000)


def test_install_never_touches_an_existing_directory(tmp_path):
    archive = make_archive(outputdb(tmp_path), tmp_path / "up.tar.gz")
    dest = tmp_path / "store" / "upload_1"
    dest.mkdir(parents=True)
    (dest / "database.txt").write_text("dbstore/BeamSpot 1 0,1,-1,-1\n")
    with check(archive) as contents, pytest.raises(FileExistsError, match="already exists"):
        install_upload(contents, dest)
    assert [f.name for f in dest.iterdir()] == ["database.txt"]
    assert (dest / "database.txt").read_text() == "dbstore/BeamSpot 1 0,1,-1,-1\n"
    assert [f.name for f in dest.parent.iterdir()] == ["upload_1"]  # no temporary directory left


def test_make_archive_refuses_an_incomplete_outputdb(tmp_path):
    from b2cal_assets.payloads.archive import ArchiveError

    db = outputdb(tmp_path)
    (db / "dbstore_BeamSize_rev_1.root").unlink()
    with pytest.raises(ArchiveError, match=r"dbstore_BeamSize_rev_1\.root"):
        make_archive(db, tmp_path / "up.tar.gz")
    assert not (tmp_path / "up.tar.gz").exists()
