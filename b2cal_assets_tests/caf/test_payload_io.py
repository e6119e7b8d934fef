"""Payload files read back exactly what was written, and ROOT sees one TTree ``payload``."""

import numpy as np
import pytest
import uproot

from b2cal_assets.caf.payload_io import md5sum, read_payload, write_payload


def test_round_trip_keeps_values_shapes_and_dtypes(tmp_path):
    constants = {
        "scale": 1.25,
        "count": np.int64(7),
        "gains": np.linspace(0.9, 1.1, 6).reshape(2, 3),
        "channels": np.array([3, 1, 2], dtype=np.int32),
        "mask": np.array([True, False]),
        "one": np.array([2.0]),
        "empty": np.zeros(0),
    }
    path = write_payload(tmp_path / "dbstore_Gains_rev_1.root", constants)
    back = read_payload(path)
    assert set(back) == set(constants)
    for name, value in constants.items():
        expected = np.asarray(value)
        assert back[name].dtype == expected.dtype, name
        assert back[name].shape == expected.shape, name
        np.testing.assert_array_equal(back[name], expected)


def test_file_is_a_ttree_with_one_branch_per_constant(tmp_path):
    path = write_payload(tmp_path / "p.root", {"a": 1.0, "b": np.arange(4.0)})
    with uproot.open(path) as f:
        tree = f["payload"]
        assert tree.classname == "TTree"
        assert tree.num_entries == 1
        assert set(tree.keys()) == {"a", "b"}
        np.testing.assert_array_equal(tree["b"].array(library="np")[0], np.arange(4.0))


def test_md5sum_changes_with_content(tmp_path):
    a = write_payload(tmp_path / "a.root", {"x": 1.0})
    b = write_payload(tmp_path / "b.root", {"x": 2.0})
    assert len(md5sum(a)) == 32
    assert md5sum(a) != md5sum(b)


def test_bad_constants_are_refused_and_nothing_is_left_behind(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        write_payload(tmp_path / "p.root", {"name": np.array(["text"])})
    with pytest.raises(ValueError, match="no constants"):
        write_payload(tmp_path / "p.root", {})
    assert list(tmp_path.iterdir()) == []
