"""Archives fetched from a site (validation results) and backups unpack as data on every Python:
with the extraction filters (3.11.4+) and without (Debian bookworm's 3.11.2, the images' Python)."""

from __future__ import annotations

import io
import tarfile

import pytest

from b2cal_assets.archives import UnsafeArchive, extract_data


@pytest.fixture(params=["with filters", "without filters"])
def python(request, monkeypatch):
    if request.param == "without filters":
        monkeypatch.delattr(tarfile, "data_filter")
    return request.param


def _archive(path, members: dict[str, bytes], link: str | None = None):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo("results/link")
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    return path


def test_plain_files_and_folders_unpack(python, tmp_path):
    archive = _archive(tmp_path / "ok.tar.gz", {"results/plots/a.png": b"png", "results/result.json": b"{}"})
    with tarfile.open(archive) as tar:
        extract_data(tar, tmp_path / "out")
    assert (tmp_path / "out/results/plots/a.png").read_bytes() == b"png"
    assert (tmp_path / "out/results/result.json").read_text() == "{}"


def test_a_member_leaving_the_target_is_refused_and_nothing_is_written_outside(python, tmp_path):
    archive = _archive(tmp_path / "evil.tar.gz", {"../outside.txt": b"x"})
    (tmp_path / "out").mkdir()
    with tarfile.open(archive) as tar, pytest.raises(UnsafeArchive, match="outside"):
        extract_data(tar, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()


def test_a_link_out_of_the_target_is_refused(python, tmp_path):
    archive = _archive(tmp_path / "link.tar.gz", {"results/a.txt": b"a"}, link="/etc/passwd")
    with tarfile.open(archive) as tar, pytest.raises(UnsafeArchive):
        extract_data(tar, tmp_path / "out")
    assert not (tmp_path / "out/results/link").exists()
