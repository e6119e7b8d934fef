"""Collector subjob splitting as the framework does it."""

import pytest

from b2cal_assets.caf.splitting import ordered_files, split_files
from b2cal_assets.domain.iov import ExpRun


def test_max_collector_jobs_spreads_files_evenly():
    files = [f"f{i:02d}" for i in range(11)]
    chunks = split_files(files, max_collector_jobs=4)
    assert [len(c) for c in chunks] == [3, 3, 3, 2]
    assert [f for c in chunks for f in c] == files


def test_max_collector_jobs_never_makes_empty_subjobs():
    assert split_files(["a", "b"], max_collector_jobs=5) == [["a"], ["b"]]


def test_max_files_per_collector_job_cuts_chunks():
    assert [len(c) for c in split_files([str(i) for i in range(7)], max_files_per_collector_job=3)] == [
        3,
        3,
        1,
    ]


def test_default_is_one_file_per_subjob():
    assert split_files(["a", "b", "c"]) == [["a"], ["b"], ["c"]]


def test_both_limits_are_refused():
    with pytest.raises(ValueError, match="not both"):
        split_files(["a"], max_files_per_collector_job=1, max_collector_jobs=1)


def test_order_is_by_run_then_path_whatever_the_input_order():
    files = {"z.root": ExpRun(0, 1), "b.root": ExpRun(0, 2), "a.root": ExpRun(0, 2), "y.root": ExpRun(1, 0)}
    reversed_files = dict(reversed(list(files.items())))
    assert ordered_files(files) == ordered_files(reversed_files) == ["z.root", "a.root", "b.root", "y.root"]
