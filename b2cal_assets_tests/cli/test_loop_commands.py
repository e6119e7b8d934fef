"""The `b2cal` commands a calibration manager and an expert type, on a toy processing."""

import json

import pytest

from b2cal_assets.cli import main
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, toy_home, toy_loop  # noqa: F401


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_site_and_processing_commands(toy_home, capsys, tmp_path):  # noqa: F811
    from b2cal_assets.loop import admin

    admin.write_global_tag("base", {"ToyA": {"mean": [0.0]}})
    code, out, _ = run(
        capsys,
        "site",
        "create",
        "bnl",
        "--backend",
        "slurm",
        "--storage-root",
        str(tmp_path),
        "--backend-args",
        '{"partition": "calib"}',
        "--signoff",
        "automatic",
    )
    assert code == 0, out
    code, out, _ = run(capsys, "site", "list", "--json")
    (site,) = json.loads(out)["sites"]
    assert site["backend"] == "slurm" and site["backend_args"] == {"partition": "calib"}
    code, out, _ = run(
        capsys,
        "processing",
        "create",
        "prompt_e1_b1",
        "--iov",
        "1,1,1,10",
        "--site",
        "bnl",
        "--global-tag",
        "base",
        "--window-hours",
        "24",
        "--user",
        "mary",
    )
    assert code == 0 and "prompt_e1_b1" in out
    code, out, _ = run(capsys, "processing", "list", "--json")
    assert [p["name"] for p in json.loads(out)["processings"]] == ["prompt_e1_b1"]
    code, out, _ = run(capsys, "audit", "--json")
    assert "create_processing" in out and "mary" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["processing", "create", "bad name", "--iov", "1,1,1,10", "--site", "bnl"], "processing name"),
        (["processing", "create", "p9", "--iov", "1,1,1", "--site", "bnl"], "--iov"),
        (["processing", "create", "p9", "--iov", "1,1,1,10", "--site", "nowhere"], "nowhere"),
        (
            ["site", "create", "x", "--backend", "slurm", "--storage-root", "/d", "--backend-args", "{oops"],
            "JSON",
        ),
        (["submit", "p1", "toy_a", "--config", "[1]"], "JSON object"),
        (["submit", "p1", "toy_a", "--set", "scale"], "KEY=JSON"),
        (["signoff", "p1", "no_such_cal", "--accept"], "no calibration"),
    ],
)
def test_bad_input_gets_one_clear_line(toy_loop, capsys, argv, message):  # noqa: F811
    code, _out, err = run(
        capsys, *argv, *(["--dir", str(TOY_SCRIPTS)] if argv[0] in ("submit", "signoff") else [])
    )
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_expert_submits_in_the_window_with_checked_settings(toy_loop, capsys):  # noqa: F811
    from b2cal_assets.db.engine import database_url
    from b2cal_assets.loop.factory import loop_service

    service = loop_service(database_url(), str(TOY_SCRIPTS))
    code, _out, err = run(capsys, "submit", "p1", "toy_a", "--set", "scale=2", "--dir", str(TOY_SCRIPTS))
    assert code == 2 and "window opens when its inputs are ready" in err  # nothing registered yet
    service.tick()  # the loop sensor's tick: toy_a's window opens (window_hours 0 runs defaults at once)
    # a 48 h window so the expert is inside it
    from b2cal_assets.db.engine import make_engine, session_scope
    from b2cal_assets.db.repo import calibrations

    with session_scope(make_engine(database_url())) as s:
        calibrations.update_calibration(s, "p2", "toy_a", state="window_open")
    code, _out, err = run(capsys, "submit", "p2", "toy_a", "--set", "scale=true", "--dir", str(TOY_SCRIPTS))
    assert code == 2 and "scale" in err  # wrong type for a float key
    code, _out, err = run(capsys, "submit", "p2", "toy_a", "--set", "nope=1", "--dir", str(TOY_SCRIPTS))
    assert code == 2 and "nope" in err and "scale" in err  # unknown key, known keys listed
    code, out, err = run(
        capsys, "submit", "p2", "toy_a", "--set", "scale=2", "--user", "alice", "--dir", str(TOY_SCRIPTS)
    )
    assert code == 0, err
    assert "starts at the next sensor tick" in out
    launches = [
        launch for launch in service.tick().launches if launch.processing == "p2" and launch.step == "toy_a"
    ]
    assert launches and launches[0].expert_config == {"scale": 2}
