"""A whole processing with its collector jobs on the real Slurm cluster, reading skims through xrootd."""

import uuid

import dagster as dg
import pytest

from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.db.engine import database_url
from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.processing import ProcessingSpec, SignoffPolicy, SiteSpec
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
from b2cal_assets_tests.defs.driver import drive
from b2cal_assets_tests.loop.helpers import collector_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.xrootd, pytest.mark.slow]


@pytest.fixture
def slurm_site(toy_home, slurm_cluster, xrootd_server, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster["SLURM_CONF"])
    monkeypatch.setenv("B2CAL_BATCH_POLL_INTERVAL_S", "1")
    monkeypatch.setenv("B2CAL_BATCH_RETRY_DELAY_S", "2")
    data = xrootd_server.directory / f"toy_{uuid.uuid4().hex[:8]}"
    files = toy.generate(data, range(1, 3))
    admin.ensure_site(
        SiteSpec(
            name="slurm_site",
            backend="slurm",
            backend_args={"time_limit": "00:10:00"},
            storage_root=str(xrootd_server.directory.parent),  # what the root:// prefix points at
            path_prefix=xrootd_server.url,
            signoff_policy=SignoffPolicy.AUTOMATIC,
            hold_until_deadline=False,
        )
    )
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    admin.register_files(files, site_name="slurm_site")
    admin.create_processing(
        ProcessingSpec(
            name="p_slurm",
            kind="prompt",
            site="slurm_site",
            iov=IoV(1, 1, 1, 2),
            global_tags=("toy_base",),
            window_hours=0,
        ),
        created_by="test",
    )
    return xrootd_server


def test_collector_jobs_run_on_slurm_and_read_through_xrootd(slurm_site):
    loop = CalibrationLoopResource(
        calibrations_dir=str(TOY_SCRIPTS), cdst_producer="b2cal_assets_tests.defs.toy:produce_cdst"
    )
    defs = build_definitions(str(TOY_SCRIPTS), loop=loop)
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    with dg.instance_for_test() as instance:
        results = drive(defs, instance)
        assert results and all(r.success for _, r in results), [r for _, r in results if not r.success]
    assert set(service.step_states("p_slurm").values()) == {"signed_off"}
    # the jobs read root:// URLs ...
    inputs = service.input_data("p_slurm", "toy_a")["hadron_calib"]
    assert inputs and all(path.startswith(slurm_site.url.rstrip("/") + "//calib/") for path in inputs)
    # ... and ran as Slurm array tasks
    jobs = collector_jobs(service.job_rows("p_slurm", "toy_a"))
    assert jobs and {j.backend for j in jobs} == {"slurm"} and {j.state for j in jobs} == {"done"}
    (payload,) = service.current_payloads("p_slurm", "toy_a")
    assert abs(float(read_payload(payload.file)["mean"].ravel()[0]) - toy.TRUE_MEAN) < 0.1
