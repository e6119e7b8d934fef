"""Real calibration names as Dagster names."""

import re

import pytest

from b2cal_assets.domain.names import asset_name, real_name, slug_collisions

DAGSTER_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@pytest.mark.parametrize(
    ("real", "slug"),
    [
        ("ARICH channel masks", "ARICH_channel_masks"),
        ("Full VXD and CDC Alignment", "Full_VXD_and_CDC_Alignment"),
        ("PXD hot/dead pixel calibration", "PXD_hot_dead_pixel_calibration"),
        ("  SVD time (3-sample) ", "SVD_time_3_sample"),
        ("toy_a", "toy_a"),
    ],
)
def test_real_names_become_readable_dagster_names(real, slug):
    assert asset_name(real) == slug
    assert DAGSTER_NAME.match(asset_name(real))


def test_a_name_with_nothing_usable_is_refused():
    with pytest.raises(ValueError, match="no letter"):
        asset_name(" / ")


def test_collisions_name_the_later_name_and_the_earlier_one():
    assert slug_collisions(["A b", "c", "A/b", "A b"]) == {"A/b": "A b"}


def test_an_asset_key_name_maps_back_to_the_real_name():
    known = ["ARICH channel masks", "PXD hot/dead pixel calibration"]
    assert real_name("PXD_hot_dead_pixel_calibration", known) == "PXD hot/dead pixel calibration"
    assert real_name("ARICH channel masks", known) == "ARICH channel masks"
    assert real_name("unknown", known) == "unknown"
