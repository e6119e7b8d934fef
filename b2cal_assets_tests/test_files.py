"""Atomic writes on a really full disk: the error names the file, nothing 0-byte or half is left."""

import signal
import subprocess

import pytest

from b2cal_assets.backends.base import JobSpec
from b2cal_assets.backends.local import PID_FILE, LocalBackend
from b2cal_assets.files import WriteError, atomic_copy, atomic_copytree, atomic_directory, atomic_write_text
from b2cal_assets_tests.fixtures.disk import fill


def _leftovers(directory):
    return sorted(p.name for p in directory.rglob("*") if p.name.startswith(".") and "filler" not in p.name)


def test_a_full_disk_names_the_file_and_keeps_the_old_one(small_disk):
    target = small_disk / "state.json"
    atomic_write_text(target, "old")
    fill(small_disk)
    with pytest.raises(WriteError, match=f"cannot write {target}: No space left on device"):
        atomic_write_text(target, "x" * 100_000)
    assert target.read_text() == "old"
    assert _leftovers(small_disk) == []


def test_a_copy_into_a_full_store_leaves_no_0_byte_or_half_file(tmp_path, small_disk):
    source = tmp_path / "payload.root"
    source.write_bytes(b"p" * 100_000)  # bigger than the whole 64 KiB store
    with pytest.raises(WriteError, match=f"cannot write {small_disk / 'payload.root'}"):
        atomic_copy(source, small_disk / "payload.root")
    assert list(small_disk.iterdir()) == []  # the copy failed for lack of room, no filler needed


def test_a_tree_copy_into_a_full_store_keeps_the_old_tree(tmp_path, small_disk):
    new = tmp_path / "outputdb"
    new.mkdir()
    (new / "database.txt").write_text("dbstore/A 2 0,0,-1,-1\n")
    (new / "A_rev_2.root").write_bytes(b"p" * 100_000)
    dest = small_disk / "outputdb"
    dest.mkdir()
    (dest / "database.txt").write_text("dbstore/A 1 0,0,-1,-1\n")
    with pytest.raises(WriteError, match=f"cannot write {dest}"):
        atomic_copytree(new, dest)
    assert sorted(p.name for p in small_disk.iterdir()) == ["outputdb"]
    assert sorted(p.name for p in dest.iterdir()) == ["database.txt"]
    assert (dest / "database.txt").read_text() == "dbstore/A 1 0,0,-1,-1\n"
    atomic_copytree(new, tmp_path / "copy")  # with room it is a whole copy
    assert (tmp_path / "copy" / "A_rev_2.root").read_bytes() == b"p" * 100_000


def test_a_pid_file_on_a_full_disk_names_its_path_and_stops_the_job(small_disk):
    workdir = small_disk / "job0"
    workdir.mkdir()
    spec = JobSpec("job0", ("sleep", "30"), workdir)
    backend = LocalBackend(max_processes=1)
    from b2cal_assets.backends import local

    started = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        process = real_popen(*args, **kwargs)
        started.append(process)
        fill(small_disk)  # the disk fills up right after the job started
        return process

    local.subprocess.Popen = popen
    try:
        with pytest.raises(WriteError, match=f"cannot write {workdir / PID_FILE}: No space left on device"):
            backend.submit([spec])
    finally:
        local.subprocess.Popen = real_popen
    assert (workdir / "run.sh").exists()
    assert not (workdir / PID_FILE).exists()
    assert started and started[0].returncode == -signal.SIGKILL  # not left running unfollowed
    assert _leftovers(small_disk) == []


def test_a_directory_built_on_a_full_disk_never_appears_half(small_disk):
    dest = small_disk / "outputdb"
    with pytest.raises(WriteError, match=f"cannot write {dest}"), atomic_directory(dest) as tmp:
        (tmp / "database.txt").write_text("dbstore_a 1 0,0,-1,-1\n")
        fill(small_disk)
        (tmp / "dbstore_a_rev_1.root").write_bytes(b"x" * 100_000)
    assert not dest.exists()
    assert _leftovers(small_disk) == []


def test_a_directory_appears_whole_and_never_replaces_one_already_there(tmp_path):
    dest = tmp_path / "tag"
    with atomic_directory(dest) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not dest.exists()  # nothing visible until the block ends
    assert (dest / "a.txt").read_text() == "a"
    with pytest.raises(FileExistsError), atomic_directory(dest) as tmp:
        (tmp / "b.txt").write_text("b")
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt"]
    assert _leftovers(tmp_path) == []
