"""A calibration that reads cDSTs, at a remote centre: the cDST jobs run on the centre's own Slurm
(another host, over SSH) with the signed-off upstream payloads copied there, the cDSTs stay at the
centre where its collector jobs read them, and only the list of what was made comes back."""

import os
import uuid
from pathlib import Path

import dagster as dg
import pytest

from b2cal_assets import home
from b2cal_assets.caf.cdst_job import CDST_OUT_DIR, CDST_OUTPUTS_FILE
from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.db.engine import database_url
from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.processing import ProcessingSpec, SignoffPolicy, SiteSpec
from b2cal_assets.domain.remote_sites import RemoteHost
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
from b2cal_assets_tests.defs.driver import drive

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PRODUCER = "b2cal_assets_tests.defs.toy:produce_cdst"  # its package travels with the jobs


@pytest.fixture
def remote_centre(toy_home, test_hosts, monkeypatch):
    monkeypatch.setenv("B2CAL_BATCH_POLL_INTERVAL_S", "1")
    monkeypatch.setenv("B2CAL_BATCH_RETRY_DELAY_S", "2")
    monkeypatch.setenv("B2CAL_SSH_CONTROL_DIR", f"/tmp/b2cal-ssh-tests/{uuid.uuid4().hex[:8]}")
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    tag = uuid.uuid4().hex[:8]
    host = test_hosts[0]
    files = toy.generate(host.storage / f"toy_cdst_{tag}", range(1, 3))  # the skims are at the centre
    admin.ensure_site(
        SiteSpec(
            name="kek",
            backend="slurm",
            backend_args={"partition": "centre1", "time_limit": "00:10:00"},
            storage_root=str(host.storage),
            signoff_policy=SignoffPolicy.AUTOMATIC,
            remote=RemoteHost(
                submit_host=host.submit_host,
                known_hosts=str(host.known_hosts),
                remote_root=str(host.root / tag),
                ssh_key=str(host.key),
                remote_python=host.python,
            ),
        )
    )
    admin.register_files(files, site_name="kek")
    admin.create_processing(
        ProcessingSpec(
            name="p_kek", kind="prompt", site="kek", iov=IoV(1, 1, 1, 2), global_tags=("toy_base",), window_hours=0
        ),
        created_by="test",
    )
    return host, host.root / tag


def toy_definitions(scripts: str) -> dg.Definitions:
    """The toy loop's definitions (built again in each run's own process)."""
    return build_definitions(scripts, loop=CalibrationLoopResource(calibrations_dir=scripts, cdst_producer=PRODUCER))


def test_a_cdst_reading_calibration_runs_at_a_remote_centre(remote_centre, toy_home):
    host, remote_root = remote_centre
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    with dg.instance_for_test() as instance:
        results = drive(toy_definitions(str(TOY_SCRIPTS)), instance, max_rounds=40)
        assert all(r.success for _, r in results), [r for _, r in results if not r.success]
    # each step closed its SSH master when its jobs were done (else it lingers for ControlPersist)
    masters = list(Path(os.environ["B2CAL_SSH_CONTROL_DIR"]).glob("cm-*"))
    assert masters == [], "an SSH master connection to the centre was left open"
    assert service.step_states("p_kek") == dict.fromkeys(("toy_a", "toy_b", "cdst", "toy_c"), "signed_off")

    cdst_jobs = service.job_rows("p_kek", "cdst")
    assert sorted(j.name.rsplit("/", 1)[-1] for j in cdst_jobs) == [
        f"cdst.{tag}.e1.r{run}.0" for tag in ("hadron_calib",) for run in (1, 2)
    ]
    assert {j.backend for j in cdst_jobs} == {"slurm"} and {j.state for j in cdst_jobs} == {"done"}
    jobcomp = (host.root.parent / "slurm" / "log" / "jobcomp.txt").read_text()
    assert f"UserId={host.user}(" in jobcomp
    registered = sorted(service.registered_cdsts("p_kek"))
    assert len(registered) == 2
    local = home.cdst_dir("p_kek").absolute()
    for path in registered:
        # registered where the centre's jobs read it: under its remote root, made there, not copied here
        assert path.startswith(str(remote_root) + "/") and Path(path).is_file()
        assert Path(path).parent.name == CDST_OUT_DIR
    for job in cdst_jobs:
        assert str(job.workdir).startswith(str(local))
        assert (Path(job.workdir) / CDST_OUTPUTS_FILE).is_file()  # fetched back
        assert not (Path(job.workdir) / CDST_OUT_DIR).exists()  # the cDSTs stayed at the centre
    (toy_c,) = service.current_payloads("p_kek", "toy_c")
    assert abs(float(read_payload(toy_c.file)["shift"].ravel()[0]) - toy.TRUE_SHIFT) < 0.05
