"""caf.utils run and IoV lists, as scripts use them for payload boundaries and gaps."""

import pytest

from b2cal_assets.domain.iov import ExpRun, IoV
from b2cal_assets.domain.run_lists import (
    RunPair,
    find_gaps_in_iov_list,
    find_run_lists_from_boundaries,
    grouper,
    iov_from_runs,
    runs_from_vector,
    runs_overlapping_iov,
    split_runs_by_exp,
    vector_from_runs,
)

RUNS = [ExpRun(1, r) for r in (1, 2, 3, 5, 8)] + [ExpRun(2, 1), ExpRun(2, 4)]


def test_vector_round_trip_keeps_order():
    vector = vector_from_runs([ExpRun(3, 9), ExpRun(3, 2)])
    assert vector == [RunPair(3, 9), RunPair(3, 2)] and vector[0].first == 3 and vector[0].second == 9
    assert runs_from_vector(vector) == [ExpRun(3, 9), ExpRun(3, 2)]
    assert runs_from_vector([(1, 2)]) == [ExpRun(1, 2)]


def test_runs_overlapping_iov_and_iov_from_runs():
    assert runs_overlapping_iov(IoV(1, 3, 2, 1), RUNS) == {ExpRun(1, 3), ExpRun(1, 5), ExpRun(1, 8), ExpRun(2, 1)}
    assert runs_overlapping_iov(IoV(2, 0, -1, -1), RUNS) == {ExpRun(2, 1), ExpRun(2, 4)}
    assert iov_from_runs(RUNS) == IoV(1, 1, 2, 4)
    assert iov_from_runs([ExpRun(4, 4)]) == IoV(4, 4, 4, 4)
    with pytest.raises(ValueError, match="at least one run"):
        iov_from_runs([])


def test_split_runs_by_exp():
    assert split_runs_by_exp(RUNS) == [RUNS[:5], RUNS[5:]]


def test_gaps_inside_an_experiment_only():
    iovs = [IoV(1, 1, 1, 3), IoV(1, 4, 1, 4), IoV(1, 8, 1, 9), IoV(2, 5, 2, 6)]
    assert find_gaps_in_iov_list(iovs) == [IoV(1, 5, 1, 7)]
    assert ExpRun(1, 3).find_gap(ExpRun(1, 4)) is None
    assert ExpRun(1, 10).find_gap(ExpRun(1, 7)) == IoV(1, 8, 1, 9)
    assert ExpRun(5, 6).make_iov() == IoV(5, 6, 5, 6)


def test_runs_between_payload_boundaries():
    intervals = find_run_lists_from_boundaries([ExpRun(1, 1), ExpRun(1, 4)], RUNS[:5])
    assert intervals == {
        IoV(1, 1, 1, 3): [ExpRun(1, 1), ExpRun(1, 2), ExpRun(1, 3)],
        IoV(1, 4, 1, -1): [ExpRun(1, 5), ExpRun(1, 8)],
    }


def test_grouper():
    assert list(grouper(2, "abcde")) == [("a", "b"), ("c", "d"), ("e",)]
