"""A fresh calibration DB with one processing and two calibrations, for the ticket tests."""

from datetime import datetime

import pytest

from b2cal_assets.db.engine import database_url, dispose_engine, ensure_schema, make_engine, session_scope
from b2cal_assets.db.repo.calibrations import ensure_calibrations, update_calibration
from b2cal_assets.db.repo.processings import create_processing
from b2cal_assets.db.repo.sites import ensure_site

PROCESSING = "prompt_2024a"
DEADLINE = datetime(2024, 5, 3, 12, 0)


@pytest.fixture
def ticket_db(b2cal_home):
    url = database_url()
    ensure_schema(url)
    engine = make_engine(url)
    with session_scope(engine) as s:
        ensure_site(s, "desy")
        create_processing(s, PROCESSING, "prompt", "desy", (0, 1, 0, 100))
        ensure_calibrations(s, PROCESSING, {"beamspot": "alice", "ecl_energy": "carol"})
        update_calibration(s, PROCESSING, "beamspot", deadline=DEADLINE)
    yield engine
    dispose_engine(url)


@pytest.fixture
def sessions(ticket_db):
    return lambda: session_scope(ticket_db)
