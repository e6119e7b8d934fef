"""The code location loads over real-style calibration names (spaces, slashes) and reports clashes."""

from __future__ import annotations

import dagster as dg
import pytest

from b2cal_assets.defs.keys import calibration_of_key, payloads_key, signoff_key
from b2cal_assets.domain.scripts import load_scripts
from b2cal_assets_tests.domain.scriptdir import calibration, write

REAL = {
    "arich_masks.py": "ARICH channel masks",
    "pxd_hot_dead.py": "PXD hot/dead pixel calibration",
    "vxdcdc.py": "Full VXD and CDC Alignment",
    "zz_clash.py": "ARICH/channel masks",  # same Dagster name as the first, found later
}


@pytest.fixture
def real_dir(tmp_path):
    folder = tmp_path / "calibrations"
    for file, name in REAL.items():
        write(folder, file, calibration(name, expert="alice"))
    return folder


def test_clash_after_slugging_is_an_error_of_the_later_script(real_dir):
    scripts = load_scripts(real_dir)
    assert set(scripts.calibrations) == {
        "ARICH channel masks",
        "PXD hot/dead pixel calibration",
        "Full VXD and CDC Alignment",
    }
    [error] = scripts.errors
    assert error.file.endswith("zz_clash.py") and error.field == "name"
    assert "'ARICH_channel_masks'" in error.message and "arich_masks.py" in error.message


def test_code_location_loads_with_mapped_keys_and_real_labels(real_dir, monkeypatch):
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(real_dir))
    from b2cal_assets import definitions

    defs = definitions.defs()
    repo = defs.get_repository_def()
    keys = set(repo.asset_graph.get_all_asset_keys())
    for name in ("ARICH channel masks", "PXD hot/dead pixel calibration", "Full VXD and CDC Alignment"):
        assert payloads_key(name) in keys and signoff_key(name) in keys
        assert calibration_of_key(payloads_key(name), [*REAL.values()]) == name
        spec = repo.assets_defs_by_key[payloads_key(name)].specs_by_key[payloads_key(name)]
        assert spec.description.startswith(f"Calibration {name}.")
        assert spec.metadata["calibration"] == name
        signoff = repo.assets_defs_by_key[signoff_key(name)].specs_by_key[signoff_key(name)]
        assert signoff.metadata["calibration"] == name and name in signoff.description
    assert dg.AssetKey(["payloads", "PXD_hot_dead_pixel_calibration"]) in keys
    assert dg.AssetKey(["payloads", "ARICH/channel masks"]) not in keys
    assert all(len(k.path) != 2 or " " not in k.path[1] for k in keys)
