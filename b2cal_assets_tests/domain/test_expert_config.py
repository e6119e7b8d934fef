import pytest

from b2cal_assets.domain.expert_config import merge_expert_config
from b2cal_assets.domain.settings import ContractError

DEFAULTS = {
    "max_files_per_run": 2,
    "min_fraction": 0.5,
    "use_cosmics": False,
    "payload_boundaries": [],
    "backend_args": {"request_memory": "2 GB"},
    "anything": None,
}


def test_shallow_merge_keeps_defaults_and_does_not_touch_them():
    merged = merge_expert_config(DEFAULTS, {"max_files_per_run": 5, "backend_args": {"queue": "s"}})
    assert merged["max_files_per_run"] == 5
    assert merged["backend_args"] == {"queue": "s"}  # shallow: the nested dict is replaced
    assert merged["min_fraction"] == 0.5
    merged["payload_boundaries"].append([1, 2])
    assert DEFAULTS["payload_boundaries"] == []


def test_no_overrides_gives_a_copy_of_the_defaults():
    assert merge_expert_config(DEFAULTS, None) == DEFAULTS


def test_unknown_key_is_named_with_the_known_keys():
    with pytest.raises(ContractError) as info:
        merge_expert_config(DEFAULTS, {"max_file_per_run": 3})
    assert info.value.field == "expert_config"
    assert "unknown key 'max_file_per_run'" in info.value.message
    assert "'max_files_per_run'" in info.value.message and "'payload_boundaries'" in info.value.message


def test_wrong_type_is_named():
    with pytest.raises(ContractError, match=r"key 'max_files_per_run' must be int.*got str '3'"):
        merge_expert_config(DEFAULTS, {"max_files_per_run": "3"})
    with pytest.raises(ContractError, match=r"key 'use_cosmics' must be bool.*got int 1"):
        merge_expert_config(DEFAULTS, {"use_cosmics": 1})
    with pytest.raises(ContractError, match=r"key 'max_files_per_run' must be int.*got float"):
        merge_expert_config(DEFAULTS, {"max_files_per_run": 2.5})


def test_int_accepted_for_float_and_none_default_accepts_anything():
    merged = merge_expert_config(DEFAULTS, {"min_fraction": 1, "anything": {"x": [1]}})
    assert merged["min_fraction"] == 1.0 and isinstance(merged["min_fraction"], float)
    assert merged["anything"] == {"x": [1]}


def test_result_must_be_json_serialisable():
    with pytest.raises(ContractError, match=r"key 'anything' holds set .*not JSON-serialisable"):
        merge_expert_config(DEFAULTS, {"anything": {1, 2}})


def test_overrides_must_be_a_mapping():
    with pytest.raises(ContractError, match="overrides must be a dict"):
        merge_expert_config(DEFAULTS, [("max_files_per_run", 1)])
