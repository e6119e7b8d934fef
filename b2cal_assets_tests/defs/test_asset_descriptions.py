"""What the Dagster UI says a payloads asset is, for the expert who owns it."""

from __future__ import annotations

from b2cal_assets.caf.scripts import load_scripts
from b2cal_assets.defs.assets import payloads_asset
from b2cal_assets.defs.keys import payloads_key
from b2cal_assets.loop.steps import build_steps
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS


def test_a_payloads_asset_says_what_it_is_who_owns_it_what_it_reads_and_how_to_submit():
    scripts = load_scripts(TOY_SCRIPTS)
    steps = build_steps(scripts.calibrations)
    asset = payloads_asset(steps["toy_b"], scripts.calibrations["toy_b"])
    text = asset.specs_by_key[payloads_key("toy_b")].description
    assert text.startswith(scripts.calibrations["toy_b"].settings.description)
    assert "**Expert:** bob" in text and "**stage:** pre_tracking" in text
    assert "**Reads:** raw data of bhabha_all_calib; **waits for:** toy_a" in text
    assert "**Writes payloads:** ToyB" in text
    toy_a = payloads_asset(steps["toy_a"], scripts.calibrations["toy_a"])
    assert "`fail` = false, `scale` = 1.0" in toy_a.specs_by_key[payloads_key("toy_a")].description
    assert "/b2cal/processing/<processing>/toy_b" in text and "Script: `toy_b.py`" in text
    assert str(TOY_SCRIPTS) not in text  # no server path
