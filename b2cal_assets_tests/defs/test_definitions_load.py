"""The shortcuts that keep loading hundreds of calibrations cheap give what Dagster itself would."""

import dagster as dg
import pytest
from dagster._config.snap import snap_from_field

from b2cal_assets.defs.configs import SIGNOFF_FIELD, SIGNOFF_SCHEMA, _submit_shape, submit_schema


@pytest.mark.parametrize(
    "defaults",
    [
        {},
        {"max_files_per_run": 2, "threshold": 3.5, "mode": "fast", "flags": [1], "extra": {"a": 1}},
        {"bad key": 1},
    ],
)
def test_a_submit_field_is_the_field_dagster_would_make(defaults):
    ours = submit_schema(defaults)
    dagsters = dg.Field(_submit_shape(defaults))  # the implicit default, resolved by Dagster
    assert snap_from_field("config", ours) == snap_from_field("config", dagsters)
    assert ours.default_value == dagsters.default_value
    assert not ours.is_required


def test_the_signoff_field_still_requires_a_decision():
    assert SIGNOFF_FIELD.is_required
    assert snap_from_field("config", SIGNOFF_FIELD) == snap_from_field("config", dg.Field(SIGNOFF_SCHEMA))
