"""A toy processing set up in a fresh B2CAL_HOME: site, base global tag, catalog, processing."""

from pathlib import Path

import pytest

from b2cal_assets.db.engine import database_url, ensure_schema
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.processing import ProcessingSpec, SignoffPolicy, SiteSpec
from b2cal_assets.home import globaltag_dir
from b2cal_assets.loop import admin
from b2cal_assets_tests.defs import toy

TOY_SCRIPTS = Path(__file__).parent / "toy_scripts"


@pytest.fixture
def toy_home(b2cal_home, monkeypatch):
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(TOY_SCRIPTS))
    ensure_schema(database_url())
    return b2cal_home


def make_site(name="toy_site", policy="automatic", backend="local"):
    admin.ensure_site(
        SiteSpec(
            name=name,
            backend=backend,
            backend_args={},
            storage_root="/tmp",
            path_prefix="",
            signoff_policy=SignoffPolicy(policy),
            hold_until_deadline=False,
        )
    )


def make_processing(name, runs: range, site="toy_site", window_hours=0.0):
    """A toy processing over ``runs``; its base global tag is written first when it does not exist yet."""
    if not (globaltag_dir("toy_base") / "database.txt").is_file():
        admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    admin.create_processing(
        ProcessingSpec(
            name=name,
            kind="prompt",
            site=site,
            iov=IoV(1, runs.start, 1, runs.stop - 1),
            global_tags=("toy_base",),
            window_hours=window_hours,
        ),
        created_by="test",
    )


@pytest.fixture
def toy_loop(toy_home):
    """Two processings over runs 1-2 and 3-4 with their skims in the catalog."""
    make_site()
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    files = toy.generate(toy_home / "data", range(1, 5))
    admin.register_files(files, site_name="toy_site")
    make_processing("p1", range(1, 3))
    make_processing("p2", range(3, 5))
    return toy_home


@pytest.fixture
def toy_loop_one(toy_home):
    """One processing over runs 1-2: the smallest whole loop."""
    make_site()
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    admin.register_files(toy.generate(toy_home / "data", range(1, 3)), site_name="toy_site")
    make_processing("p1", range(1, 3))
    return toy_home


@pytest.fixture
def toy_defs(toy_home):
    from b2cal_assets.defs.definitions import build_definitions
    from b2cal_assets.defs.resources import CalibrationLoopResource

    loop = CalibrationLoopResource(
        calibrations_dir=str(TOY_SCRIPTS), cdst_producer="b2cal_assets_tests.defs.toy:produce_cdst"
    )
    return build_definitions(str(TOY_SCRIPTS), loop=loop)
