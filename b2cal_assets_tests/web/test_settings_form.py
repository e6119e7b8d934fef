"""The submission form generated from a script's defaults: a field per key, typed by its default, read
back with the error next to the field it is about."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from b2cal_assets.web.settings_form import SettingsRejected, settings_fields, submitted_settings

DEFAULTS = {
    "min_events": 500,
    "scale": 1.0,
    "fit": True,
    "method": "chi2",
    "bins": [0, 10, 20],
    "cuts": {"pt": 0.2},
}


def form(**fields: str) -> FormData:
    return FormData([("settings_form", "1"), *((f"cfg.{k}", v) for k, v in fields.items())])


def test_a_field_per_key_typed_by_its_default():
    fields = {f.key: f for f in settings_fields(DEFAULTS, {**DEFAULTS, "scale": 2.0})}
    assert {k: f.kind for k, f in fields.items()} == {
        "bins": "json",
        "cuts": "json",
        "fit": "bool",
        "method": "str",
        "min_events": "int",
        "scale": "float",
    }
    assert fields["scale"].text == "2.0" and fields["scale"].changed and fields["scale"].default_text == "1.0"
    assert fields["fit"].text == "true" and not fields["fit"].changed
    assert fields["cuts"].text.replace("\n", "").replace(" ", "") == '{"pt":0.2}'


def test_only_the_changed_keys_are_sent():
    typed = form(min_events="600", scale="1.0", method="chi2", bins="[0, 10, 20]", cuts='{"pt": 0.3}')
    # "fit" unchecked: a checkbox that is not sent is false
    assert submitted_settings(typed, DEFAULTS) == {"min_events": 600, "fit": False, "cuts": {"pt": 0.3}}


def test_the_json_form_is_read_as_before_without_the_marker():
    assert submitted_settings(FormData([("expert_config", "{}")]), DEFAULTS) is None


@pytest.mark.parametrize(
    "key, text, said",
    [
        ("min_events", "5.5", "must be a whole number, such as 500, not '5.5'"),
        ("scale", "fast", "must be a number, such as 1.0, not 'fast'"),
        ("scale", "nan", "must be a finite number, not 'nan'"),
        ("bins", "[0, 10", "not valid JSON"),
        ("cuts", "[1]", "JSON of the default's type (dict), not list"),
    ],
)
def test_a_wrong_value_is_refused_next_to_its_field(key, text, said):
    values = {"min_events": "500", "scale": "1.0", "method": "chi2", "bins": "[0]", "cuts": "{}", key: text}
    with pytest.raises(SettingsRejected) as refused:
        submitted_settings(form(**values), DEFAULTS)
    assert list(refused.value.errors) == [key]
    assert said in refused.value.errors[key]
    assert refused.value.values[key] == text  # shown again as typed
    shown = {
        f.key: f for f in settings_fields(DEFAULTS, DEFAULTS, refused.value.values, refused.value.errors)
    }
    assert shown[key].text == text and said in shown[key].error


def test_a_key_the_script_does_not_have_is_refused():
    with pytest.raises(SettingsRejected) as refused:
        submitted_settings(FormData([("settings_form", "1"), ("cfg.scael", "2")]), {"scale": 1.0})
    assert "not settings of this script: scael; known: scale" in refused.value.errors["_form"]
