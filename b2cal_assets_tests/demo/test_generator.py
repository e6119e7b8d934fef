"""The generator writes reproducible skims with varied run information; truth and nominal differ."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from b2cal_assets.caf.framework import Conditions
from b2cal_assets.demo import truth
from b2cal_assets.demo.generator import TAGS, generate
from b2cal_assets.demo.reconstruction import CDST_TREE, produce_cdst
from b2cal_assets.demo.skim_io import read_label, read_tree


def test_skims_per_run_and_tag_with_varied_run_info(raw_catalog):
    runs = sorted({f.run for f in raw_catalog})
    assert runs == [1, 2, 3, 4, 5, 6]
    info = {f.run: f.run_info for f in raw_catalog}
    assert info[3]["run_type"] == "cosmic" and info[3]["magnet"] == "Off"
    assert {f.data_tag for f in raw_catalog if f.run == 3} == {"cosmic_calib", "random_calib"}
    assert info[2]["duration_minutes"] < 30
    assert info[4]["data_quality"] == "Bad For Alignment"
    assert sum(1 for i in info.values() if i["data_quality"] == "Good" and i["run_type"] == "physics") >= 3
    per_run_tag = Counter((f.run, f.data_tag) for f in raw_catalog)
    assert (
        per_run_tag[(1, "mumu_tight_or_highm_calib")] == TAGS["mumu_tight_or_highm_calib"].files_per_run > 1
    )
    assert {f.data_format for f in raw_catalog} == {"raw"}
    for f in raw_catalog[:3]:
        assert read_label(f.path, "data_tag") == f.data_tag


def test_small_runs_are_small(tmp_path):
    files = generate(tmp_path, runs=2, events_per_run=400, small_runs=(2,), data_tags=["hadron_calib"])
    events = Counter()
    for f in files:
        events[f.run] += f.n_events
        assert f.size_bytes > 0
    assert events[2] < events[1] / 4


def test_same_seed_same_events(tmp_path):
    first = generate(tmp_path / "a", runs=1, events_per_run=50, data_tags=["bhabha_all_calib"], seed=3)
    second = generate(tmp_path / "b", runs=1, events_per_run=50, data_tags=["bhabha_all_calib"], seed=3)
    other = generate(tmp_path / "c", runs=1, events_per_run=50, data_tags=["bhabha_all_calib"], seed=4)
    a, b, c = (read_tree(f[0].path, "events", ["ecl_energy"])["ecl_energy"] for f in (first, second, other))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_unknown_tag_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown data tags"):
        generate(tmp_path, data_tags=["hlt_mumu"])


def test_cdst_applies_the_alignment(tmp_path):
    (raw,) = generate(tmp_path / "raw", runs=1, events_per_run=300, data_tags=["radmumu_calib"])
    mumu = generate(tmp_path / "raw", runs=1, events_per_run=300, data_tags=["mumu_tight_or_highm_calib"])
    shift = np.array([100.0, -50.0, 20.0])
    plain = produce_cdst([f.path for f in mumu], tmp_path / "a", Conditions(), exp=1, run=1)
    moved = produce_cdst(
        [f.path for f in mumu], tmp_path / "b", Conditions({"VXDAlignment": {"shift": shift}}), exp=1, run=1
    )
    v0 = read_tree(str(plain), CDST_TREE, ["vertex"])["vertex"]
    v1 = read_tree(str(moved), CDST_TREE, ["vertex"])["vertex"]
    assert np.allclose(v1 - v0, shift, atol=1e-2)
    assert read_label(str(moved), "data_format") == "cdst"
    with pytest.raises(ValueError, match="one data tag"):
        produce_cdst([raw.path, mumu[0].path], tmp_path / "c", Conditions(), exp=1, run=1)


def test_truth_within_and_nominal_outside_tolerance():
    for payload in truth.PAYLOAD_NAMES:
        assert truth.within_tolerance(payload, truth.TRUTH[payload])
        assert not truth.within_tolerance(payload, truth.NOMINAL[payload])
    assert truth.deviation("VXDAlignment", {})["shift"] == float("inf")
    with pytest.raises(KeyError, match="no payload 'Nope'"):
        truth.deviation("Nope", {})
