"""prompt.utils as scripts call it to thin their input files (real ROOT files, counted with uproot)."""

import random

import numpy as np
import pytest
import uproot

from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.prompt_utils import (
    events_in_basf2_file,
    filter_by_max_events_per_run,
    filter_by_max_files_per_run,
    filter_by_select_max_events_from_files,
    group_files_by_iov,
)


@pytest.fixture
def files(tmp_path):
    """{path: IoV} of basf2-like files: run 1 has 4 files (100, 0, 50, 300 events), run 2 two (20, 20)."""
    layout = {(0, 1): [100, 0, 50, 300], (0, 2): [20, 20]}
    mapping = {}
    for (exp, run), sizes in layout.items():
        for index, size in enumerate(sizes):
            path = tmp_path / f"e{exp}_r{run}_{index}.root"
            with uproot.recreate(path) as out:
                out["tree"] = {"x": np.arange(size, dtype=np.float64)}
            mapping[str(path)] = IoV(exp, run, exp, run)
    return mapping


def _names(selection):
    return [path.rsplit("/", 1)[1] for path in selection]


def test_events_in_basf2_file_counts_the_tree(files):
    assert [events_in_basf2_file(p) for p in files] == [100, 0, 50, 300, 20, 20]


def test_events_in_a_file_without_tree_names_the_file(tmp_path):
    path = tmp_path / "other.root"
    with uproot.recreate(path) as out:
        out["events"] = {"x": np.zeros(3)}
    with pytest.raises(NotImplementedError, match=r"TTree 'tree'.*other\.root has none \(keys: events"):
        events_in_basf2_file(str(path))


def test_max_files_per_run_in_order_skipping_small_files(files):
    chosen = filter_by_max_files_per_run(files, 2, min_events_per_file=10)
    assert _names(chosen) == ["e0_r1_0.root", "e0_r1_2.root", "e0_r2_0.root", "e0_r2_1.root"]
    assert set(chosen.values()) == {IoV(0, 1, 0, 1), IoV(0, 2, 0, 2)}


def test_max_files_per_run_random_select_is_reproducible_with_a_seed(files):
    random.seed(7)
    first = filter_by_max_files_per_run(files, 1, random_select=True)
    random.seed(7)
    again = filter_by_max_files_per_run(files, 1, random_select=True)
    assert first == again and len(first) == 2
    picks = set()
    for seed in range(40):
        random.seed(seed)
        picks.update(_names(filter_by_max_files_per_run(files, 1, random_select=True)))
    assert {"e0_r1_0.root", "e0_r1_3.root"} <= picks  # not always the first file


def test_max_events_per_run_counts_at_most_max_events_per_file(files):
    assert _names(filter_by_max_events_per_run(files, 120)) == [
        "e0_r1_0.root", "e0_r1_2.root", "e0_r2_0.root", "e0_r2_1.root",
    ]
    # each file counts for at most 40 events: run 1 needs 100 -> 0 (40), 2 (40), 3 (40); the empty one is skipped
    capped = filter_by_max_events_per_run(files, 100, max_events_per_file=40)
    assert _names(capped) == ["e0_r1_0.root", "e0_r1_2.root", "e0_r1_3.root", "e0_r2_0.root", "e0_r2_1.root"]


def test_select_max_events_from_files_random_and_all_or_nothing(files):
    paths = list(files)
    random.seed(3)
    selected = filter_by_select_max_events_from_files(paths, 320)
    assert selected == sorted(selected)
    assert sum(events_in_basf2_file(p) for p in selected) >= 320
    assert "e0_r1_1.root" not in _names(selected)  # the empty file never counts
    assert paths == list(files)  # the caller's list is left alone
    assert filter_by_select_max_events_from_files(paths, 10_000) == []


def test_group_files_by_iov_keeps_order(files):
    grouped = group_files_by_iov(files)
    assert list(grouped) == [IoV(0, 1, 0, 1), IoV(0, 2, 0, 2)]
    assert _names(grouped[IoV(0, 2, 0, 2)]) == ["e0_r2_0.root", "e0_r2_1.root"]
