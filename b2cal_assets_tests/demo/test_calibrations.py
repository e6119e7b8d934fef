"""Every demo calibration recovers the synthetic detector's true constants, and the chain's couplings hold."""

from __future__ import annotations

import pytest

from b2cal_assets.caf.framework import AlgorithmStatus
from b2cal_assets.demo import truth
from b2cal_assets_tests.demo.conftest import input_data_for, make_cdsts, run_script

CALIBRATIONS = [
    "caf_cdc_tracking",
    "caf_cdc_badwires",
    "caf_svd_time",
    "caf_top_pre",
    "caf_vxdcdc_alignment",
    "caf_klm_alignment",
    "caf_top",
    "caf_ecl_energy",
    "caf_cdcdedx_electron",
    "caf_cdcdedx_hadron",
    "caf_beamspot",
    "caf_boostvector",
    "caf_ecms",
]


def test_the_demo_set_has_every_calibration_of_the_prompt_graph(demo_scripts):
    assert sorted(demo_scripts.calibrations) == sorted(CALIBRATIONS)
    stages = {name: script.stage.value for name, script in demo_scripts.calibrations.items()}
    assert stages["caf_vxdcdc_alignment"] == stages["caf_klm_alignment"] == "alignment"
    assert stages["caf_top"] == "post_tracking" and stages["caf_ecms"] == "analysis"
    assert set(demo_scripts["caf_vxdcdc_alignment"].depends_on) == {"caf_cdc_tracking", "caf_svd_time"}
    for script in demo_scripts.calibrations.values():
        assert script.validation is not None, f"{script.name} has no validation script"
        assert set(script.settings.produced_payloads) <= set(truth.TRUTH)


@pytest.mark.parametrize("name", CALIBRATIONS)
def test_calibration_recovers_the_truth(chain, name):
    produced = chain.scripts[name].settings.produced_payloads
    for payload_set in chain.results[name].sets:
        assert set(payload_set.payloads) == set(produced)
        for payload, constants in payload_set.payloads.items():
            deviation = truth.deviation(payload, constants)
            assert truth.within_tolerance(payload, constants), (
                f"{name} {payload} runs {payload_set.runs}: deviation {deviation}, tolerance {truth.TOLERANCES[payload]}"
            )
            # The base global tag is off, so a calibration that did nothing would fail here.
            assert not truth.within_tolerance(payload, truth.NOMINAL[payload])


def test_cdc_t0_iterates_until_the_shift_converges(chain):
    result = chain.results["caf_cdc_tracking"]
    assert result.iterations > 2
    assert [statuses[0] for statuses in result.statuses[:-1]] == [AlgorithmStatus.ITERATE] * (
        result.iterations - 1
    )
    assert result.statuses[-1] == [AlgorithmStatus.OK]


def test_svd_time_merges_small_runs_run_by_run(chain, raw_catalog):
    result = chain.results["caf_svd_time"]
    small = {2, 5}
    runs_per_set = [[r.run for r in s.runs] for s in result.sets]
    assert len(result.sets) >= 2, runs_per_set
    for runs in runs_per_set:
        if set(runs) & small:
            assert len(runs) > 1, f"small run merged with no other: {runs_per_set}"
    assert AlgorithmStatus.NOT_ENOUGH_DATA in result.statuses[0]
    # The cosmic run (magnet off) is filtered out.
    assert 3 not in [run for runs in runs_per_set for run in runs]


def test_nominal_alignment_in_the_cdsts_biases_the_beam_spot(chain, tmp_path):
    """cDSTs made with the base global tag's alignment move the beam spot out of tolerance."""
    upstream = {
        k: v
        for k, v in chain.upstream_of["caf_beamspot"].items()
        if k not in ("VXDAlignment", "CDCAlignment")
    }
    mumu = [f for f in chain.raw if f.data_tag == "mumu_tight_or_highm_calib"]
    cdsts = make_cdsts(mumu, tmp_path, upstream)
    result = run_script(chain.scripts["caf_beamspot"], cdsts, upstream)
    spot = result.payloads()["BeamSpot"]
    assert not truth.within_tolerance("BeamSpot", spot)
    assert truth.deviation("BeamSpot", spot)["position"] > 3 * truth.TOLERANCES["BeamSpot"]["position"]
    assert truth.within_tolerance("BeamSpot", chain.results["caf_beamspot"].payloads()["BeamSpot"])


def test_wrong_cdc_t0_makes_good_wires_look_bad(chain):
    upstream = dict(chain.upstream_of["caf_cdc_badwires"])
    upstream.pop("CDCTimeZeros")
    result = run_script(chain.scripts["caf_cdc_badwires"], chain.raw, upstream)
    assert truth.deviation("CDCBadWires", result.payloads()["CDCBadWires"])["misclassified"] > 50


def test_nominal_time_calibrations_bias_the_alignment(chain):
    upstream = {k: v for k, v in chain.upstream_of["caf_vxdcdc_alignment"].items() if k != "CDCTimeZeros"}
    result = run_script(chain.scripts["caf_vxdcdc_alignment"], chain.raw, upstream)
    assert not truth.within_tolerance("CDCAlignment", result.payloads()["CDCAlignment"])


def test_nominal_boost_biases_the_collision_energy(chain):
    upstream = {k: v for k, v in chain.upstream_of["caf_ecms"].items() if k != "CollisionBoostVector"}
    result = run_script(chain.scripts["caf_ecms"], chain.cdsts, upstream)
    assert not truth.within_tolerance("CollisionInvariantMass", result.payloads()["CollisionInvariantMass"])


def test_alignment_filters_keep_out_runs_bad_for_alignment(chain, raw_catalog):
    script = chain.scripts["caf_vxdcdc_alignment"]
    used = {run.run for s in chain.results["caf_vxdcdc_alignment"].sets for run in s.runs}
    bad = {f.run for f in raw_catalog if f.run_info["data_quality"] == "Bad For Alignment"}
    assert bad and not (used & bad)
    # Taking every run, the bad one drags the VXD alignment away from the truth.
    everything = [
        f.__class__(f.path, f.data_tag, f.data_format, f.exp, f.run, {**f.run_info, "data_quality": "Good"})
        for f in raw_catalog
    ]
    result = run_script(script, everything, chain.upstream_of["caf_vxdcdc_alignment"])
    assert not truth.within_tolerance("VXDAlignment", result.payloads()["VXDAlignment"])


def test_max_files_per_run_limits_the_input(chain):
    script = chain.scripts["caf_cdc_tracking"]
    (calibration,) = script.get_calibrations(
        input_data_for(script, chain.raw), expert_config={"max_files_per_run": 1}
    )
    per_run_and_tag: dict = {}
    for path, run in calibration.input_files.items():
        key = (run, path.rsplit("/", 1)[-1].split(".")[0])
        per_run_and_tag[key] = per_run_and_tag.get(key, 0) + 1
    assert per_run_and_tag and max(per_run_and_tag.values()) == 1
