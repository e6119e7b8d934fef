"""One orchestrator, two remote centres: each processing's collector jobs run on its centre's own
Slurm (another host, reached over SSH), one centre signs off automatically and one by hand."""

import uuid
from pathlib import Path

import dagster as dg
import pytest

from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.db.engine import database_url
from b2cal_assets.defs.definitions import build_definitions
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.processing import ProcessingSpec, SignoffPolicy, SiteSpec
from b2cal_assets.domain.remote_sites import RemoteHost
from b2cal_assets.home import validation_work_dir
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
from b2cal_assets_tests.defs.driver import check_metadata, drive
from b2cal_assets_tests.loop.helpers import collector_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CENTRES = {
    # site: (test host index, runs, sign-off, the centre's own batch settings)
    "kek": (0, range(1, 3), SignoffPolicy.AUTOMATIC, {"partition": "centre1", "time_limit": "00:10:00"}),
    "desy": (1, range(3, 5), SignoffPolicy.MANUAL, {"partition": "centre2", "memory": "300M"}),
}


@pytest.fixture
def remote_centres(toy_home, test_hosts, monkeypatch, tmp_path):
    monkeypatch.setenv("B2CAL_BATCH_POLL_INTERVAL_S", "1")
    monkeypatch.setenv("B2CAL_BATCH_RETRY_DELAY_S", "2")
    monkeypatch.setenv("B2CAL_SSH_CONTROL_DIR", f"/tmp/b2cal-ssh-tests/{uuid.uuid4().hex[:8]}")
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    tag = uuid.uuid4().hex[:8]
    for site, (index, runs, policy, backend_args) in CENTRES.items():
        host = test_hosts[index]
        files = toy.generate(host.storage / f"toy_{tag}", runs)  # the skims are at the centre
        admin.ensure_site(
            SiteSpec(
                name=site,
                backend="slurm",
                backend_args=backend_args,
                storage_root=str(host.storage),
                signoff_policy=policy,
                remote=RemoteHost(
                    submit_host=host.submit_host,
                    known_hosts=str(host.known_hosts),
                    remote_root=str(host.root / tag),
                    ssh_key=str(host.key),
                    remote_python=host.python,
                ),
            )
        )
        admin.register_files(files, site_name=site)
        admin.create_processing(
            ProcessingSpec(
                name=f"p_{site}",
                kind="prompt",
                site=site,
                iov=IoV(1, runs.start, 1, runs.stop - 1),
                global_tags=("toy_base",),
                window_hours=0,
            ),
            created_by="test",
        )
    return {site: (test_hosts[index], test_hosts[index].root / tag) for site, (index, *_) in CENTRES.items()}


def toy_definitions(scripts: str) -> dg.Definitions:
    """The toy loop's definitions (built again in each run's own process)."""
    loop = CalibrationLoopResource(
        calibrations_dir=scripts, cdst_producer="b2cal_assets_tests.defs.toy:produce_cdst"
    )
    return build_definitions(scripts, loop=loop)


def test_two_remote_centres_calibrate_at_once_with_their_own_signoff(remote_centres, toy_home):
    defs = toy_definitions(str(TOY_SCRIPTS))
    service = loop_service(database_url(), str(TOY_SCRIPTS))
    runs, signed_by_hand = [], []
    with dg.instance_for_test() as instance:
        for round_ in range(6):  # drive; sign off by hand at the manual centre what waits for it
            results = drive(
                defs,
                instance,
                max_rounds=1 if round_ == 0 else 30,
                parallel=(toy_definitions, (str(TOY_SCRIPTS),)),
            )
            runs += results
            assert all(r.success for _, r in results), [r for _, r in results if not r.success]
            assert "finished" not in service.step_states("p_kek").values()  # automatic: nothing waits
            waiting = [s for s, state in service.step_states("p_desy").items() if state == "finished"]
            if not waiting:
                break
            signed_by_hand += waiting
            for step in waiting:
                expert = service.scripts.calibrations[step].settings.expert_username
                service.sign_off("p_desy", step, decision="accept", by=expert, automatic=False)
        records = {r.run_id: instance.get_run_record_by_id(r.run_id) for _, r in runs}
        checks = {p: check_metadata(instance, runs, "toy_a", p) for p in ("p_kek", "p_desy")}
    for processing in ("p_kek", "p_desy"):
        states = service.step_states(processing)
        assert states["toy_a"] == states["toy_b"] == "signed_off", states
    assert "toy_a" in signed_by_hand  # the manual centre waited for a person

    # in flight together: a toy_a run of each centre, each running while the other did
    def span(processing):
        ids = [
            r.run_id
            for req, r in runs
            if req.partition_key == processing and "toy_a" in str(req.asset_selection)
        ]
        rec = records[ids[0]]
        return rec.start_time, rec.end_time

    (a0, a1), (b0, b1) = span("p_kek"), span("p_desy")
    assert max(a0, b0) < min(a1, b1)

    for site, (host, remote_root) in remote_centres.items():
        processing = f"p_{site}"
        jobs = collector_jobs(service.job_rows(processing, "toy_a"))
        assert jobs and {j.backend for j in jobs} == {"slurm"} and {j.state for j in jobs} == {"done"}
        # each job ran at its centre, as the centre's login, in the site's remote root ...
        jobcomp = (host.root.parent / "slurm" / "log" / "jobcomp.txt").read_text()
        assert f"UserId={host.user}(" in jobcomp
        remote_dirs = [p for p in remote_root.rglob("collector_output/*") if (p / "collected.npz").is_file()]
        assert remote_dirs
        # ... and its results were fetched back here
        for job in jobs:
            assert (Path(job.workdir) / "collected.npz").is_file()
            assert not str(job.workdir).startswith(str(remote_root))
        (payload,) = service.current_payloads(processing, "toy_a")
        assert abs(float(read_payload(payload.file)["mean"].ravel()[0]) - toy.TRUE_MEAN) < 0.1
        # the validation ran as a batch job at the centre, over the centre's copy of the payloads ...
        attempt = int(Path(payload.file).parent.parent.name.removeprefix("attempt_"))
        here = validation_work_dir(processing, "toy_a", attempt)
        there = remote_root / str(here).lstrip("/")
        assert (there / "validation_results" / "toy_a_mean.png").is_file()
        assert (there / "stdout").is_file() and "[INFO] toy_a: mean" in (there / "stdout").read_text()
        # ... and only its one tarball came back, its plots now in the payload store and the check
        assert (here / "validation_results.tar.gz").is_file() and not (here / "validation_results").exists()
        plot = Path(payload.file).parent.parent / "validation_run" / "toy_a_mean.png"
        assert plot.is_file()
        assert checks[processing]["plot/toy_a_mean.png"].value == str(plot)
