"""Every bad value a command takes: one line naming it, exit 2, and nothing written (database or files)."""

import pytest
from sqlalchemy import select

from b2cal_assets.caf.scripts import load_scripts
from b2cal_assets.cli import main
from b2cal_assets.db import engine as db_engine
from b2cal_assets.db.models import Base
from b2cal_assets.loop.service import LoopService
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS, toy_home, toy_loop  # noqa: F401


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot(home):
    """Every row of every table, and every file under ``B2CAL_HOME`` but the database's own."""
    engine = db_engine.make_engine(db_engine.database_url())
    with engine.connect() as conn:
        rows = {t.name: sorted(map(repr, conn.execute(select(t)).all())) for t in Base.metadata.sorted_tables}
    files = sorted(str(p.relative_to(home)) for p in home.rglob("*") if "b2cal.db" not in p.name)
    return rows, files


NEW = ["processing", "create", "p3", "--site", "toy_site"]
BAD_INPUTS = [
    pytest.param([*NEW, "--iov", "1,5,1,6", "--window-hours", "inf"], "--window-hours", id="window-inf"),
    pytest.param([*NEW, "--iov", "1,5,1,6", "--window-hours", "nan"], "--window-hours", id="window-nan"),
    pytest.param([*NEW, "--iov", "1,5,1,6", "--window-hours", "-1"], "out of range", id="window-negative"),
    pytest.param([*NEW, "--iov", "1,5,1,6", "--window-hours", "1e308"], "out of range", id="window-huge"),
    pytest.param([*NEW, "--iov", "1,5,1,6", "--window-hours", "soon"], "not a number", id="window-text"),
    pytest.param([*NEW, "--iov", "1,5,1,2147483648"], "out of range", id="iov-above-2^31"),
    pytest.param([*NEW, "--iov", "99999999999999999999,0,-1,-1"], "out of range", id="iov-huge"),
    pytest.param([*NEW, "--iov", "1,-5,1,6"], "--iov", id="iov-negative"),
    pytest.param([*NEW, "--iov", "1,1,1,2"], "the same IoV as processing p1", id="iov-identical"),
    pytest.param([*NEW, "--iov", "1,2,1,3"], "overlapping processing p1", id="iov-overlap"),
    pytest.param([*NEW, "--iov", "0,0,-1,-1"], "--allow-overlap", id="iov-open-overlaps-all"),
    pytest.param([*NEW, "--iov", "1,5,1,6", "--global-tag", "no_such_tag"], "unknown global tag", id="tag"),
    pytest.param([*NEW, "--iov", "1,5,1,6", "--kind", "weekly"], "--kind", id="kind"),
    pytest.param(["processing", "create", "bad name", "--iov", "1,5,1,6", "--site", "toy_site"], "name", id="name"),
    pytest.param(["processing", "create", "p1", "--iov", "9,5,9,6", "--site", "toy_site"], "p1", id="name-taken"),
    pytest.param(["processing", "cancel", "no_such"], "no_such", id="cancel-unknown"),
    pytest.param(
        ["site", "create", "s2", "--backend", "local", "--storage-root", "/no/such/dir"],
        "--storage-root",
        id="site-storage-root",
    ),
    pytest.param(["audit", "--limit", "many"], "--limit", id="argparse-int"),
    pytest.param(["audit", "--limit", "0"], "out of range", id="limit-zero"),
    pytest.param(["db", "backup", "--keep", "1.5"], "not a whole number", id="keep-fraction"),
    pytest.param(["web", "--port", "70000"], "give 1 to 65535", id="port"),
    pytest.param(["submit", "p1", "toy_a", "--max-iterations", "-2"], "--max-iterations", id="iterations"),
    pytest.param(["demo", "--timeout", "inf"], "not a finite number", id="demo-timeout-inf"),
    pytest.param(["demo", "--window-minutes", "nan"], "not a finite number", id="demo-window-nan"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_nothing_written(toy_loop, capsys, argv, message):  # noqa: F811
    before = snapshot(toy_loop)
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert message in err
    assert len(err.strip().splitlines()) == 1, err  # one line: no usage dump, no traceback
    assert err.startswith("b2cal: error: ")
    assert snapshot(toy_loop) == before


def test_an_overlap_is_allowed_when_asked(toy_loop, capsys):  # noqa: F811
    code, out, err = run(capsys, *NEW, "--iov", "1,1,1,2", "--allow-overlap", "--global-tag", "toy_base")
    assert code == 0, err
    assert "p3 created" in out and err == ""


def test_a_processing_with_no_data_is_created_with_a_warning(toy_loop, capsys):  # noqa: F811
    code, _out, err = run(capsys, *NEW, "--iov", "7,1,7,100")
    assert code == 0, err
    assert err.strip() == (
        "b2cal: warning: no data registered for IoV 7,1,7,100 yet; the processing waits until runs arrive"
    )


def test_a_cancelled_processing_is_left_alone_by_the_loop(toy_loop, capsys):  # noqa: F811
    service = LoopService(db_engine.database_url(), load_scripts(TOY_SCRIPTS))
    before = service.step_states("p1")
    code, out, err = run(capsys, "processing", "cancel", "p1", "--reason", "window typo", "--user", "mgr")
    assert code == 0, err
    assert "processing p1 cancelled (was open)" in out
    report = service.tick()
    assert all(p != "p1" for p, _step in report.opened)
    assert all(launch.processing != "p1" for launch in report.launches)
    assert service.step_states("p1") == before
    assert any(p == "p2" for p, _step in report.opened)  # the others go on
    code, _out, err = run(capsys, "processing", "cancel", "p1")
    assert code == 2 and "already cancelled" in err
    code, out, _ = run(capsys, "audit", "--json")
    assert "cancel_processing" in out and "window typo" in out
