"""cDST jobs through the real single-node Slurm of ``.ci/services/slurm.sh``: one array job per
chunk of submissions, a failed run's job retried by the job manager, the cDSTs handed over as their
jobs end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

from b2cal_assets.backends.commands import SubprocessRunner
from b2cal_assets.backends.manager import RetryPolicy, SubmitPolicy
from b2cal_assets.backends.slurm import SlurmBackend
from b2cal_assets.caf.cdst_job import CdstOutput
from b2cal_assets.caf.cdst_production import run_cdst_jobs
from b2cal_assets_tests.caf import cdst_producers
from b2cal_assets_tests.caf.test_cdst_production import MEAN, _production, _runs, _y, upstream  # noqa: F401
from b2cal_assets_tests.fixtures.services import CountingRunner

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_cdst_jobs_run_on_slurm_and_a_failed_one_is_retried(tmp_path, upstream, slurm_cluster):  # noqa: F811
    runner = CountingRunner(SubprocessRunner(env=slurm_cluster))
    runs = _runs(tmp_path, range(1, 4))
    Path(runs[2].files[0] + cdst_producers.FAIL_ONCE).write_text("")
    outputs: list[CdstOutput] = []
    outcome = run_cdst_jobs(
        _production(tmp_path, upstream, runs),
        SlurmBackend(runner=runner),
        on_output=outputs.append,
        submit_policy=SubmitPolicy(poll_interval_s=0.5),
        retry_policy=RetryPolicy(max_retries=1, retry_delay_s=0.0),
    )
    assert runner.count("sbatch") == 2  # the three runs in one array, then the retry
    assert [(j["name"], j["state"], j["tries"]) for j in outcome.jobs] == [
        ("cdst.hadron_calib.e1.r1.0", "done", 1),
        ("cdst.hadron_calib.e1.r2.0", "done", 1),
        ("cdst.hadron_calib.e1.r3.0", "done", 2),
    ]
    assert sorted(o.run for o in outputs) == [1, 2, 3]
    for output, part in zip(sorted(outputs, key=lambda o: o.run), runs, strict=True):
        d = uproot.open(output.path)["events"]["d"].array(library="np")
        np.testing.assert_allclose(d, _y(part.files) - MEAN)
