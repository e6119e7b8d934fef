"""The code location loads over real-style calibration names (spaces, slashes) and reports clashes."""

from __future__ import annotations

import dagster as dg
import pytest

from b2cal_assets.caf.scripts import load_scripts
from b2cal_assets.defs.keys import calibration_of_key, payloads_key, signoff_key
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
    [shown] = defs.metadata["script_errors"].data
    assert shown["file"].endswith("zz_clash.py") and shown["field"] == "name"


def test_a_definition_dagster_refuses_leaves_the_others_loaded(real_dir, monkeypatch):
    from b2cal_assets.defs import assets as assets_module
    from b2cal_assets.defs.definitions import build_definitions

    real_payloads_asset = assets_module.payloads_asset

    def refuse_pxd(step, script):
        if step.name == "PXD hot/dead pixel calibration":
            raise dg.DagsterInvalidDefinitionError("refused for the test")
        return real_payloads_asset(step, script)

    monkeypatch.setattr(assets_module, "payloads_asset", refuse_pxd)
    defs = build_definitions(str(real_dir))
    repo = defs.get_repository_def()
    keys = set(repo.asset_graph.get_all_asset_keys())
    assert payloads_key("ARICH channel masks") in keys and payloads_key("Full VXD and CDC Alignment") in keys
    assert payloads_key("PXD hot/dead pixel calibration") not in keys
    refused = [e for e in defs.metadata["script_errors"].data if e.get("field") == "dagster"]
    assert refused == [
        {
            "calibration": "PXD hot/dead pixel calibration",
            "field": "dagster",
            "message": refused[0]["message"],
        }
    ]
    assert "pxd_hot_dead.py" in refused[0]["message"] and "refused for the test" in refused[0]["message"]


RENAMED = {"toy_a": "Toy A/mean (x)", "toy_b": "Toy B: y-x shift"}


@pytest.fixture
def renamed_toy_dir(tmp_path):
    """The toy scripts with real-style names (spaces, a slash, parentheses, a colon)."""
    import shutil

    from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS

    folder = tmp_path / "renamed"
    shutil.copytree(TOY_SCRIPTS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for path in folder.rglob("*.py"):
        text = path.read_text()
        for old, new in RENAMED.items():
            text = text.replace(f'name="{old}"', f"name={new!r}")
        path.write_text(text)
    return folder


def test_a_run_of_a_renamed_asset_calibrates_the_right_calibration(
    toy_loop_one, renamed_toy_dir, monkeypatch
):
    from b2cal_assets.db.engine import database_url
    from b2cal_assets.defs.definitions import build_definitions
    from b2cal_assets.defs.resources import CalibrationLoopResource
    from b2cal_assets.loop.factory import loop_service
    from b2cal_assets_tests.defs.driver import drive

    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(renamed_toy_dir))
    loop = CalibrationLoopResource(
        calibrations_dir=str(renamed_toy_dir), cdst_producer="b2cal_assets_tests.defs.toy:produce_cdst"
    )
    defs = build_definitions(str(renamed_toy_dir), loop=loop)
    with dg.instance_for_test() as instance:
        results = drive(defs, instance)
        assert results and all(r.success for _, r in results), [r for _, r in results if not r.success]
        ran = {k for request, _ in results for k in request.asset_selection or []}
        assert payloads_key("Toy A/mean (x)") in ran
        assert dg.AssetKey(["payloads", "Toy_A_mean_x"]) in ran
        service = loop_service(database_url(), str(renamed_toy_dir))
        assert service.step_states("p1") == {
            "Toy A/mean (x)": "signed_off",
            "Toy B: y-x shift": "signed_off",
            "cdst": "signed_off",
            "toy_c": "signed_off",
        }
        assert service.current_payloads("p1", "Toy A/mean (x)")


def test_definitions_load_over_framework_style_scripts():
    """Scripts shaped like the framework's (basf2/ROOT at module level, Collection, strategies, real
    names) become assets in their stages; the ones needing the framework are shown in the metadata."""
    from pathlib import Path

    from b2cal_assets.defs.definitions import build_definitions

    folder = Path(__file__).resolve().parents[1] / "fixtures" / "framework_style" / "prompt" / "calibrations"
    defs = build_definitions(str(folder))
    repo = defs.get_repository_def()
    scripts = load_scripts(folder)
    assert len(scripts.calibrations) == 9
    for name, script in scripts.calibrations.items():
        key = payloads_key(name)
        assets_def = repo.assets_defs_by_key[key]
        assert assets_def.group_names_by_key[key] == script.stage.value
        assert assets_def.specs_by_key[key].metadata["calibration"] == name
        upstream = {dep.asset_key for dep in assets_def.specs_by_key[key].deps}
        for dependency in script.depends_on:
            assert signoff_key(dependency) in upstream
    assert payloads_key("ECL crystal energy (e+e- -> gamma gamma)") == dg.AssetKey(
        ["payloads", "ECL_crystal_energy_e_e_gamma_gamma"]
    )
    shown = {Path(e["file"]).name: e for e in defs.metadata["script_errors"].data}
    assert set(shown) == {"caf_top.py", "caf_top_common.py"}
    assert all(e["needs_framework"] for e in shown.values())
