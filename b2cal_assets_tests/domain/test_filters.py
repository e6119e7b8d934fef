import pytest

from b2cal_assets.domain.filters import (
    INPUT_DATA_FILTERS,
    RunInfo,
    filter_category,
    run_matches,
    validate_filter_name,
)


def good_run(**changes) -> RunInfo:
    base = {
        "exp": 26,
        "run": 100,
        "run_type": "physics",
        "magnet": "On",
        "beam_energy": "4S",
        "data_quality": "Good",
        "duration_minutes": 45.0,
        "data_tag": "hadron_calib",
    }
    return RunInfo(**{**base, **changes})


def test_categories_and_values_are_the_frameworks():
    assert set(INPUT_DATA_FILTERS) == {"Magnet", "Beam Energy", "Run Type", "Data Tag", "Data Quality Tag"}
    assert set(INPUT_DATA_FILTERS["Magnet"]) == {"On", "Off", "Either"}
    assert "" in INPUT_DATA_FILTERS["Beam Energy"]
    for tag in (
        "mumu_tight_or_highm_calib",
        "delayedbhabha_calib",
        "bhabha_combined_calib",
        "btocharm_calib",
    ):
        assert INPUT_DATA_FILTERS["Data Tag"][tag] == tag
    assert ">=30 Minute Run" in INPUT_DATA_FILTERS["Data Quality Tag"]


def test_empty_filter_list_accepts_any_run():
    assert run_matches([], good_run(magnet="Off", data_quality="Bad"))


def test_left_out_category_means_either():
    assert run_matches(["Good"], good_run(magnet="On"))
    assert run_matches(["Good"], good_run(magnet="Off"))


def test_names_of_one_category_are_alternatives_and_categories_must_all_match():
    filters = ["hadron_calib", "mumu_tight_or_highm_calib", "Good", "On"]
    assert run_matches(filters, good_run(data_tag="mumu_tight_or_highm_calib"))
    assert not run_matches(filters, good_run(data_tag="bhabha_all_calib"))
    assert not run_matches(filters, good_run(magnet="Off"))


def test_not_negates():
    assert not run_matches(["NOT On"], good_run(magnet="On"))
    assert run_matches(["NOT On"], good_run(magnet="Off"))
    assert not run_matches(["NOT Bad For Alignment"], good_run(data_quality="Bad For Alignment"))


def test_magnet_either_matches_all():
    assert run_matches(["Either"], good_run(magnet="On"))
    assert run_matches(["Either"], good_run(magnet="Off"))


def test_long_run_filter_uses_duration_and_must_hold_with_the_quality_flag():
    assert run_matches([">=30 Minute Run"], good_run(duration_minutes=30))
    assert not run_matches([">=30 Minute Run"], good_run(duration_minutes=29.5))
    assert not run_matches([">=30 Minute Run"], good_run(duration_minutes=None))
    # both hold: a long bad run and a short good run are out
    assert not run_matches(["Good", ">=30 Minute Run"], good_run(data_quality="Bad"))
    assert not run_matches(["Good", ">=30 Minute Run"], good_run(duration_minutes=10))
    assert run_matches(["Good", ">=30 Minute Run"], good_run())


def test_good_or_recoverable():
    assert run_matches(["Good Or Recoverable"], good_run(data_quality="Good"))
    assert run_matches(["Good Or Recoverable"], good_run(data_quality="Recoverable"))
    assert not run_matches(["Good Or Recoverable"], good_run(data_quality="Bad"))
    assert not run_matches(["Good"], good_run(data_quality="Recoverable"))


def test_beam_energy_and_run_type():
    assert run_matches(["Continuum", "cosmic"], good_run(beam_energy="Continuum", run_type="cosmic"))
    assert not run_matches(["Continuum"], good_run(beam_energy="4S"))
    assert run_matches([""], good_run(beam_energy=""))


def test_unknown_filter_names_the_filter_and_suggests():
    with pytest.raises(ValueError, match=r"unknown filter 'Goood'.*did you mean 'Good'"):
        validate_filter_name("Goood")
    with pytest.raises(ValueError, match="unknown filter 'NOT Offf'"):
        run_matches(["NOT Offf"], good_run())


def test_validate_strips_one_not():
    assert validate_filter_name("NOT On") == "On"
    assert filter_category("NOT hadron_calib") == "Data Tag"
