"""The bad values whose range an engine checks on its own (integer columns, JSON numbers), refused by
the CLI on real MariaDB and PostgreSQL as on SQLite: one line naming the value, exit 2, nothing written.
Earlier, IoV numbers above 2^31 and NaN windows reached the server and came back as tracebacks.
"""

import pytest

from b2cal_assets.db.engine import ensure_schema
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.cli.test_bad_input import run, snapshot
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, make_processing, make_site

NEW = ["processing", "create", "p3", "--site", "toy_site"]
ENGINE_CASES = [
    pytest.param([*NEW, "--iov", "1,5,1,2147483648"], "out of range", id="iov-above-2^31"),
    pytest.param([*NEW, "--iov", "4294967296,0,4294967296,5"], "out of range", id="exp-above-2^32"),
    pytest.param([*NEW, "--iov", "1,5,1,99999999999999999999"], "out of range", id="iov-above-2^64"),
    pytest.param([*NEW, "--iov", "1,5,1,6", "--window-hours", "nan"], "not a finite number", id="window-nan"),
    pytest.param([*NEW, "--iov", "1,5,1,6", "--window-hours", "inf"], "not a finite number", id="window-inf"),
    pytest.param([*NEW, "--iov", "1,5,1,6", "--window-hours", "1e308"], "out of range", id="window-huge"),
    pytest.param(
        ["submit", "p1", "toy_a", "--max-iterations", "99999999999999999999"],
        "--max-iterations",
        id="iterations",
    ),
    pytest.param(["submit", "p1", "toy_a", "--set", "scale=NaN"], "scale", id="expert-config-nan"),
    pytest.param(["submit", "p1", "toy_a", "--set", "scale=1e999"], "scale", id="expert-config-inf"),
    pytest.param(["submit", "p1", "toy_a", "--config", '{"scale": Infinity}'], "scale", id="config-infinity"),
    pytest.param(
        [
            "site",
            "create",
            "s2",
            "--backend",
            "local",
            "--storage-root",
            "/tmp",
            "--backend-args",
            '{"n": NaN}',
        ],
        "--backend-args",
        id="backend-args-nan",
    ),
    pytest.param(["audit", "--limit", "99999999999999999999"], "--limit", id="audit-limit-huge"),
]


@pytest.fixture
def toy_loop_on(request, b2cal_home, monkeypatch, tmp_path):
    """A toy processing p1 (runs 1-2) on an empty database of the engine ``request.param``."""
    from b2cal_assets_tests.fixtures.databases import temporary_database

    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(TOY_SCRIPTS))
    with temporary_database(request.param, tmp_path) as url:
        monkeypatch.setenv("B2CAL_DATABASE_URL", url)
        ensure_schema(url)
        make_site()
        admin.register_files(toy.generate(b2cal_home / "data", range(1, 3), events=100), site_name="toy_site")
        make_processing("p1", range(1, 3), window_hours=1)
        loop_service(url, str(TOY_SCRIPTS)).tick()  # toy_a's window opens: submissions are taken
        yield b2cal_home


@pytest.mark.parametrize(
    "toy_loop_on",
    [
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
    indirect=True,
)
@pytest.mark.parametrize(("argv", "message"), ENGINE_CASES)
def test_engine_range_cases_are_refused_on_the_server_engines(toy_loop_on, capsys, argv, message):
    before = snapshot(toy_loop_on)
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line: no traceback from the server
    assert err.startswith("b2cal: error: ")
    assert snapshot(toy_loop_on) == before
