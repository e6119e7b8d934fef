import json
import subprocess
import sys
from pathlib import Path

from b2cal_assets.cli import main
from b2cal_assets_tests.domain.scriptdir import calibration, write

B2CAL = Path(sys.prefix) / "bin" / "b2cal"


def script_dir(tmp_path: Path, *, broken: bool) -> Path:
    folder = tmp_path / "calibrations"
    write(folder, "caf_cdc.py", calibration("CDC"))
    write(
        folder,
        "caf_ecl.py",
        calibration("ECL", formats=["cdst"], depends_on=[("caf_cdc", "cdc")], expert="bob"),
    )
    if broken:
        write(folder, "caf_bad.py", calibration("Bad", formats=["dst"]))
    return folder


def test_list_json_in_process(tmp_path, capsys):
    folder = script_dir(tmp_path, broken=False)
    assert main(["calibrations", "list", "--dir", str(folder), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [(c["name"], c["stage"], c["depends_on"]) for c in document["calibrations"]] == [
        ("CDC", "pre_tracking", []),
        ("ECL", "post_tracking", ["CDC"]),
    ]
    assert document["errors"] == []


def test_list_json_with_errors_exits_1_and_still_prints(tmp_path, capsys):
    folder = script_dir(tmp_path, broken=True)
    assert main(["calibrations", "list", "--dir", str(folder), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in document["calibrations"]] == ["CDC", "ECL"]
    assert document["errors"] == [
        {
            "file": str((folder / "caf_bad.py").resolve()),
            "field": "input_data_formats",
            "message": "line 3: 'dst' is not a data format; use cdst, mdst, raw, udst",
            "needs_framework": False,
        }
    ]


def test_list_table(tmp_path, capsys):
    folder = script_dir(tmp_path, broken=True)
    assert main(["calibrations", "list", "--dir", str(folder)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "STAGE", "DEPENDS", "ON", "EXPERT"]
    assert lines[1].split() == ["CDC", "pre_tracking", "-", "alice"]
    assert lines[2].split() == ["ECL", "post_tracking", "CDC", "bob"]
    assert "1 script error(s):" in lines
    assert any("caf_bad.py: input_data_formats: line 3: 'dst' is not a data format" in line for line in lines)


def test_missing_directory_is_a_user_error(tmp_path, capsys):
    assert main(["calibrations", "list", "--dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("b2cal: error: calibrations directory") and "does not exist" in err
    assert "Traceback" not in err


def test_list_json_through_the_installed_command(tmp_path):
    folder = script_dir(tmp_path, broken=True)
    result = subprocess.run(
        [str(B2CAL), "calibrations", "list", "--dir", str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert [c["name"] for c in document["calibrations"]] == ["CDC", "ECL"]
    assert [e["field"] for e in document["errors"]] == ["input_data_formats"]
