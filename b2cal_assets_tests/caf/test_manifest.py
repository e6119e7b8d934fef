"""``b2cal calibrations export`` and ``B2CAL_CALIBRATIONS_MANIFEST``: the settings written where the
framework is set up (here: a setup command and b2cal's stand-ins), the calibrations loaded from them
without importing a script, changed scripts reported, bad manifests named by file, field and reason."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from b2cal_assets.caf.manifest import ManifestError, load_calibrations, load_manifest
from b2cal_assets.caf.scripts import load_scripts
from b2cal_assets.cli import main

FRAMEWORK_STYLE = Path(__file__).resolve().parents[1] / "fixtures" / "framework_style"
SETUP = "export BELLE2_RELEASE=release-08-01-00"


@pytest.fixture
def prompt_dir(tmp_path):
    shutil.copytree(FRAMEWORK_STYLE / "prompt", tmp_path / "prompt")
    return tmp_path / "prompt" / "calibrations"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def manifest(prompt_dir, tmp_path, capsys, b2cal_home):
    target = tmp_path / "manifest.json"
    code, out, err = run(
        capsys,
        "calibrations",
        "export",
        "--dir",
        prompt_dir,
        "--setup",
        SETUP,
        "--output",
        target,
        "--python",
        sys.executable,
    )
    assert code == 0, err
    assert "release-08-01-00" in out and "B2CAL_CALIBRATIONS_MANIFEST=" in out
    return target


def test_the_manifest_holds_every_scripts_settings_file_checksum_and_the_release(manifest, prompt_dir):
    document = json.loads(manifest.read_text())
    assert document["framework_release"] == "release-08-01-00" and document["framework"] == "b2cal shim"
    assert document["calibrations_dir"] == str(prompt_dir.resolve())
    by_name = {c["name"]: c for c in document["calibrations"]}
    align = by_name["Full VXD and CDC Alignment"]
    assert align["file"] == "caf_vxdcdc_alignment.py" and align["stage"] == "alignment"
    assert align["settings"]["subsystem"] == "alignment" and len(align["sha256"]) == 64
    assert align["settings"]["depends_on"] == ["CDC Tracking", "SVD Time Calibration"]
    assert align["validation"]["file"] == "../validations/vxdcdc_alignment.py"
    # scripts that need the framework are in the manifest's errors, as the loader reported them
    assert {Path(e["file"]).name for e in document["errors"] if e["needs_framework"]} == {
        "caf_top.py",
        "caf_top_common.py",
    }


def test_the_calibrations_load_from_the_manifest_as_from_the_scripts_without_importing_them(
    manifest, prompt_dir, monkeypatch
):
    direct = load_scripts(prompt_dir).to_json()
    for script in prompt_dir.glob("*.py"):  # no script can be imported any more
        script.rename(script.with_suffix(".moved"))
    (prompt_dir / "caf_cdc.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.setenv("B2CAL_CALIBRATIONS_MANIFEST", str(manifest))
    scripts = load_calibrations()
    loaded = scripts.to_json()
    assert loaded["calibrations"] == direct["calibrations"]
    assert loaded["errors"] == direct["errors"]
    assert all(s.module is None for s in scripts.calibrations.values())
    assert scripts["Ecms Calibrations"].depends_on == ("BeamSpot Calibrations",)
    # every script changed or went since the export: each is reported, the manifest's settings used
    warnings = {Path(w.file).name: w.message for w in scripts.warnings}
    assert warnings["caf_cdc.py"].startswith(f"changed since the manifest {manifest} was written")
    assert warnings["caf_ecms.py"].startswith("is missing since the manifest")
    assert "run `b2cal calibrations export` again" in warnings["caf_ecms.py"]


def test_an_unchanged_directory_has_no_warnings_and_a_changed_script_is_listed(manifest, prompt_dir, capsys):
    code, out, _ = run(capsys, "calibrations", "list", "--manifest", manifest, "--json")
    assert json.loads(out)["warnings"] == []
    with (prompt_dir / "caf_ecms.py").open("a") as f:
        f.write("# tuned\n")
    code, out, _ = run(capsys, "calibrations", "list", "--manifest", manifest)
    assert code == 1
    assert "1 warning(s):" in out and "caf_ecms.py: checksum: changed since the manifest" in out


def test_the_code_location_loads_from_the_manifest_and_shows_a_changed_script(
    manifest, prompt_dir, monkeypatch
):
    with (prompt_dir / "caf_ecms.py").open("a") as f:
        f.write("# tuned\n")
    monkeypatch.setenv("B2CAL_CALIBRATIONS_MANIFEST", str(manifest))
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(prompt_dir))
    from b2cal_assets import definitions
    from b2cal_assets.defs.keys import payloads_key

    defs = definitions.defs()
    keys = set(defs.get_repository_def().asset_graph.get_all_asset_keys())
    assert payloads_key("Ecms Calibrations") in keys and payloads_key("Full VXD and CDC Alignment") in keys
    shown = defs.metadata["script_errors"].data
    (changed,) = [e for e in shown if e.get("warning")]
    assert changed["file"].endswith("caf_ecms.py") and changed["field"] == "checksum"


def _mutate(manifest: Path, change) -> Path:
    document = json.loads(manifest.read_text())
    change(document)
    bad = manifest.with_name("bad.json")
    bad.write_text(json.dumps(document))
    return bad


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda d: d.pop("calibrations"), "manifest.calibrations", "missing"),
        (lambda d: d.update(calibrations={}), "manifest.calibrations", "must be list"),
        (lambda d: d.update(b2cal_calibrations_manifest=7), "b2cal_calibrations_manifest", "must be 1"),
        (lambda d: d.update(framework_release=8), "manifest.framework_release", "must be str or NoneType"),
    ],
)
def test_a_bad_manifest_names_file_field_and_reason(manifest, capsys, change, field, reason):
    bad = _mutate(manifest, change)
    with pytest.raises(ManifestError) as info:
        load_manifest(bad)
    assert (info.value.file, info.value.field) == (str(bad), field) and reason in info.value.reason
    code, _out, err = run(capsys, "calibrations", "list", "--manifest", bad)
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"{bad}: {field}: " in err


def test_a_file_that_is_no_manifest_is_named(tmp_path, capsys):
    (tmp_path / "m.json").write_text("{oops")
    code, _out, err = run(capsys, "calibrations", "list", "--manifest", tmp_path / "m.json")
    assert code == 2 and f"{tmp_path / 'm.json'}: json: not valid JSON at line 1" in err
    code, _out, err = run(capsys, "calibrations", "list", "--manifest", tmp_path / "none.json")
    assert code == 2 and "none.json: file: cannot be read" in err


def test_a_bad_entry_is_an_error_of_its_own_and_its_dependents_and_the_others_load(manifest):
    def break_svd(d):
        (svd,) = [c for c in d["calibrations"] if c["name"] == "SVD Time Calibration"]
        svd["settings"]["subsystem"] = "no_such_detector"
        (cdc,) = [c for c in d["calibrations"] if c["name"] == "CDC Tracking"]
        del cdc["sha256"]

    scripts = load_manifest(_mutate(manifest, break_svd))
    assert "SVD Time Calibration" not in scripts and "CDC Tracking" not in scripts
    assert "Full VXD and CDC Alignment" not in scripts  # depends on both
    assert "ARICH channel masks" in scripts and "PXD hot/dead pixel calibration" in scripts
    fields = {e.field: e.message for e in scripts.errors if e.file.endswith("bad.json")}
    assert any(f.endswith("].settings.subsystem") for f in fields), fields
    assert any(f.endswith("].sha256") and m == "missing" for f, m in fields.items()), fields
    assert any(
        f.endswith("].settings.depends_on") and "'CDC Tracking' is not an earlier calibration" in m
        for f, m in fields.items()
    ), fields


def test_a_failing_setup_writes_nothing_and_keeps_the_old_manifest(manifest, prompt_dir, capsys):
    before = manifest.read_text()
    code, _out, err = run(
        capsys,
        "calibrations",
        "export",
        "--dir",
        prompt_dir,
        "--setup",
        "source /no/such/b2setup",
        "--output",
        manifest,
        "--python",
        sys.executable,
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "the setup or the extractor failed (exit 1)" in err and "/no/such/b2setup" in err
    assert manifest.read_text() == before and not manifest.with_name("manifest.json.new").exists()
    code, _out, err = run(capsys, "calibrations", "export", "--dir", prompt_dir / "nope", "--setup", SETUP)
    assert code == 2 and "--dir:" in err and "is not a directory" in err
    code, _out, err = run(
        capsys, "calibrations", "export", "--dir", prompt_dir, "--setup", SETUP, "--python", "/no/such/python"
    )
    assert code == 2 and "the setup or the extractor failed (exit 127)" in err
