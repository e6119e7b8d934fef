"""The deployment's B2CAL_* variables: one reading, one clear error, and one answer for every path."""

import pytest

from b2cal_assets import home
from b2cal_assets.db.engine import database_url
from b2cal_assets.settings import SettingsError, settings


@pytest.mark.parametrize("empty", [True, False], ids=["empty", "unset"])
def test_an_empty_home_means_the_default_everywhere(monkeypatch, tmp_path, empty):
    monkeypatch.chdir(tmp_path)
    if empty:
        monkeypatch.setenv("B2CAL_HOME", "")
    else:
        monkeypatch.delenv("B2CAL_HOME", raising=False)
    monkeypatch.delenv("B2CAL_DATABASE_URL", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    expected = (tmp_path / ".b2cal").resolve()
    assert home.b2cal_home() == expected
    assert database_url() == f"sqlite:///{expected / 'b2cal.db'}"
    assert home.dagster_home() == expected / "dagster"


def test_the_database_and_the_payloads_follow_the_home(monkeypatch, tmp_path):
    monkeypatch.setenv("B2CAL_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("B2CAL_DATABASE_URL", raising=False)
    assert database_url() == f"sqlite:///{tmp_path / 'h' / 'b2cal.db'}"
    assert home.payload_dir("p", "c", 2) == tmp_path / "h" / "payloads" / "p" / "c" / "attempt_2"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("B2CAL_UPLOAD_MAX_BYTES", "lots"),
        ("B2CAL_UPLOAD_MAX_BYTES", "0"),
        ("B2CAL_LOCAL_MAX_PROCESSES", "2.5"),
        ("B2CAL_BATCH_POLL_INTERVAL_S", "nan"),
        ("B2CAL_BATCH_MAX_FAILED_POLLS", "-1"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        settings()
    assert str(caught.value).startswith(f"{variable}={value!r}: ")
    assert "\n" not in str(caught.value)


def test_values_are_read_when_asked_not_at_import(monkeypatch):
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", "/somewhere/scripts")
    assert settings().calibrations_dir == "/somewhere/scripts"
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", "/elsewhere")
    assert settings().calibrations_dir == "/elsewhere"


def test_make_and_the_cli_agree_where_the_home_is(monkeypatch):
    """`make demo` / `make dev` and a `b2cal` command run from the repository use the same B2CAL_HOME
    (they did not: the CLI then offered to create an empty database in another place)."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    make = shutil.which("make")
    assert make, "make is needed (the README's quick start uses it)"
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("B2CAL_HOME", "DAGSTER_HOME", "MAKEFLAGS")}
    out = subprocess.run(
        [make, "-s", "--no-print-directory", "where"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    said = dict(line.split("=", 1) for line in out.splitlines())
    monkeypatch.chdir(repo)
    monkeypatch.delenv("B2CAL_HOME", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert Path(said["B2CAL_HOME"]) == home.b2cal_home()
    assert Path(said["DAGSTER_HOME"]) == home.dagster_home()
