"""The toy scripts' loop on a fresh calibration DB, with a clock the test moves (no jobs are run here)."""

from datetime import datetime

import pytest

from b2cal_assets.caf.scripts import load_scripts
from b2cal_assets.db.engine import database_url, ensure_schema
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.processing import ProcessingSpec, SignoffPolicy, SiteSpec
from b2cal_assets.loop import admin
from b2cal_assets.loop.service import LoopService
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS

T0 = datetime(2024, 5, 1, 12, 0)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_site(name: str, *, hold: bool = False, policy: str = "automatic") -> None:
    admin.ensure_site(
        SiteSpec(
            name=name,
            backend="local",
            backend_args={},
            storage_root="/tmp",
            path_prefix="",
            signoff_policy=SignoffPolicy(policy),
            hold_until_deadline=hold,
        )
    )


def add_processing(name: str, site: str, runs: range = range(1, 3), window_hours: float = 48.0) -> None:
    admin.create_processing(
        ProcessingSpec(
            name=name,
            kind="prompt",
            site=site,
            iov=IoV(1, runs.start, 1, runs.stop - 1),
            global_tags=("toy_base",),
            window_hours=window_hours,
        ),
        created_by="manager",
    )


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
def loop(b2cal_home, monkeypatch, clock):
    """A service over the toy scripts: ``prompt_now`` starts jobs at once, ``prompt_hold`` at the deadline."""
    monkeypatch.setenv("B2CAL_CALIBRATIONS_DIR", str(TOY_SCRIPTS))
    url = database_url()
    ensure_schema(url)
    add_site("now_site")
    add_site("hold_site", hold=True)
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    admin.register_files(toy.generate(b2cal_home / "data", range(1, 3), events=50), site_name="now_site")
    add_processing("prompt_now", "now_site")
    add_processing("prompt_hold", "hold_site")
    return LoopService(url, load_scripts(TOY_SCRIPTS), clock=clock)
