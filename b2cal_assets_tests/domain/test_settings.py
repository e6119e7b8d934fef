import datetime
import json
import pickle

import pytest

from b2cal_assets.domain.settings import CalibrationSettings, ContractError, ValidationSettings


def make(**changes) -> CalibrationSettings:
    kwargs = {
        "name": "CDC T0",
        "expert_username": "alice",
        "description": "t0",
        "input_data_formats": ["RAW"],
        "input_data_names": ["hlt_mumu"],
        "input_data_filters": {"hlt_mumu": ["mumu_tight_or_highm_calib", "Good", "NOT Off"]},
        "expert_config": {"max_files_per_run": 2},
    }
    kwargs.update(changes)
    return CalibrationSettings(**kwargs)


def contract_error(**changes) -> ContractError:
    with pytest.raises(ContractError) as info:
        make(**changes)
    return info.value


def test_valid_settings_are_normalised_like_the_framework():
    settings = make(subsystem="cdc", produced_payloads=["CDCTimeZeros"])
    assert settings.input_data_formats == frozenset({"raw"})
    assert settings.input_data_names == frozenset({"hlt_mumu"})
    assert settings.depends_on == ()
    assert settings.subsystem == "cdc"
    assert settings.produced_payloads == ("CDCTimeZeros",)
    assert json.loads(settings.json_dumps())["input_data_filters"] == {
        "hlt_mumu": ["mumu_tight_or_highm_calib", "Good", "NOT Off"]
    }


def test_positional_arguments_in_the_current_frameworks_order_subsystem_third():
    settings = CalibrationSettings(
        "X", "bob", "ecl", "desc", ["cdst"], ["bhabha"], None, None, {"a": 1}, ["ECLCrystalEnergy"]
    )
    assert (settings.name, settings.subsystem, settings.description) == ("X", "ecl", "desc")
    assert settings.expert_config == {"a": 1}
    assert settings.produced_payloads == ("ECLCrystalEnergy",)


def test_old_positional_order_is_a_clear_error_naming_the_current_order():
    with pytest.raises(ContractError) as info:
        CalibrationSettings("X", "bob", "the description", ["cdst"], ["bhabha"])
    assert info.value.field == "subsystem"
    assert "'the description' is not one of the framework's subsystems" in info.value.message
    assert "name, expert_username, subsystem, description" in info.value.message


@pytest.mark.parametrize("subsystem", ["CDC", "tracking ", "vtx", 3])
def test_subsystem_outside_the_frameworks_list(subsystem):
    err = contract_error(subsystem=subsystem)
    assert err.field == "subsystem"
    assert "pxd, svd, cdc, ecl, top, arich, klm, trigger, tracking, alignment, beam, example" in err.message


def test_every_framework_subsystem_is_accepted():
    for subsystem in ("pxd", "svd", "cdc", "ecl", "top", "arich", "klm", "trigger", "tracking", "alignment",
                      "beam", "example"):
        assert make(subsystem=subsystem).subsystem == subsystem


def test_contract_error_str_is_field_then_message():
    assert str(ContractError("name", "too long")) == "name: too long"


def test_name_longer_than_64_characters():
    err = contract_error(name="x" * 65)
    assert err.field == "name"
    assert "65 characters" in err.message and "at most 64" in err.message


def test_empty_name():
    assert contract_error(name="").field == "name"


def test_formats_empty():
    err = contract_error(input_data_formats=[])
    assert err.field == "input_data_formats" and "at least one" in err.message


def test_formats_unknown_value_is_named():
    err = contract_error(input_data_formats=["raw", "dst"])
    assert err.field == "input_data_formats" and "'dst' is not a data format" in err.message


def test_formats_as_a_bare_string():
    err = contract_error(input_data_formats="raw")
    assert err.field == "input_data_formats" and "not the string 'raw'" in err.message


def test_names_empty():
    err = contract_error(input_data_names=[], input_data_filters=None)
    assert err.field == "input_data_names" and "at least one" in err.message


def test_filter_keys_must_equal_names():
    err = contract_error(input_data_filters={"hlt_bhabha": ["Good"]})
    assert err.field == "input_data_filters"
    assert (
        "no filters for 'hlt_mumu'" in err.message and "'hlt_bhabha' not in input_data_names" in err.message
    )


def test_unknown_filter_value_names_data_name_and_filter():
    err = contract_error(input_data_filters={"hlt_mumu": ["NOT Gooood"]})
    assert err.field == "input_data_filters['hlt_mumu']"
    assert "unknown filter 'NOT Gooood'" in err.message


def test_depends_on_must_be_settings_objects():
    err = contract_error(depends_on=["caf_cdc"])
    assert err.field == "depends_on"
    assert "entry 0 is str 'caf_cdc'" in err.message and "from prompt.calibrations" in err.message


def test_depends_on_itself():
    other = make(name="CDC T0")
    err = contract_error(depends_on=[other])
    assert err.field == "depends_on" and "cannot depend on itself" in err.message


def test_expert_config_must_be_a_dict():
    err = contract_error(expert_config=[1, 2])
    assert err.field == "expert_config" and "must be a dict" in err.message


def test_expert_config_must_be_json_serialisable():
    err = contract_error(expert_config={"since": datetime.date(2024, 1, 1)})
    assert err.field == "expert_config" and "key 'since' holds date" in err.message


def test_contract_error_is_a_value_error_like_the_frameworks():
    with pytest.raises(ValueError):
        make(name="x" * 80)


def test_settings_are_immutable():
    settings = make()
    with pytest.raises(AttributeError, match="immutable"):
        settings.name = "other"
    with pytest.raises(TypeError, match="read-only"):
        settings.expert_config["max_files_per_run"] = 5


def test_caller_mutation_does_not_leak_into_settings():
    config = {"boundaries": [1, 2]}
    settings = make(expert_config=config)
    config["boundaries"].append(3)
    assert settings.expert_config == {"boundaries": [1, 2]}


def test_hashable_by_name_and_depends_on_names():
    cdc = make()
    ecl = make(name="ECL", depends_on=[cdc])
    assert ecl.depends_on_names == ("CDC T0",)
    assert {cdc: 1, ecl: 2}[make()] == 1
    assert hash(cdc) == hash("CDC T0")


def test_pickle_round_trip():
    cdc = make()
    ecl = make(name="ECL", depends_on=[cdc])
    again = pickle.loads(pickle.dumps(ecl))
    assert again == ecl and again.depends_on[0] == cdc


def test_validation_settings():
    settings = ValidationSettings("CDC T0", "plots", ["*.pdf"], {"bins": 50})
    assert settings.download_files == ("*.pdf",)
    assert settings.expert_config == {"bins": 50}
    with pytest.raises(ContractError, match=r"name: .* at most 64"):
        ValidationSettings("v" * 70, "plots")
    with pytest.raises(ContractError, match=r"download_files: .*not the string"):
        ValidationSettings("CDC", "plots", "plots.pdf")


def test_every_input_data_filter_value_is_accepted_including_the_empty_beam_energy():
    from b2cal_assets.domain.filters import INPUT_DATA_FILTERS

    for category, values in INPUT_DATA_FILTERS.items():
        for value in values:
            settings = make(input_data_filters={"hlt_mumu": [INPUT_DATA_FILTERS[category][value]]})
            assert settings.input_data_filters["hlt_mumu"] == (value,)


def test_input_data_filters_are_exactly_the_frameworks():
    from b2cal_assets.domain.filters import INPUT_DATA_FILTERS

    assert {k: sorted(v) for k, v in INPUT_DATA_FILTERS.items()} == {
        "Magnet": sorted(["On", "Off", "Either"]),
        "Beam Energy": sorted(["No Beam", "4S", "Continuum", "", "Scan"]),
        "Run Type": sorted(["beam", "cosmic", "debug", "null", "physics"]),
        "Data Tag": sorted([
            "hlt_skim", "bhabha_all_calib", "cosmic_calib", "gamma_gamma_calib", "hadron_calib",
            "btocharm_calib", "mumu_tight_or_highm_calib", "offip_calib", "radmumu_calib", "random_calib",
            "single_gamma_mc", "delayedbhabha_calib", "bhabha_combined_calib",
        ]),
        "Data Quality Tag": sorted([
            ">=30 Minute Run", "Bad For Alignment", "Good", "Good Shifter", "Good For PXD",
            "Good Or Recoverable", "Good Or Recoverable Shifter",
        ]),
    }
    assert all(key == value for values in INPUT_DATA_FILTERS.values() for key, value in values.items())
