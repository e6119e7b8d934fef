"""Reading input through XRootD: the path prefix, and a real xrootd read by uproot in a Slurm job."""

from __future__ import annotations

import sys
import time
import uuid

import numpy as np
import pytest
import uproot

from b2cal_assets.backends.base import JobSpec, JobState
from b2cal_assets.backends.commands import SubprocessRunner, prefixed
from b2cal_assets.backends.manager import xrootd_env
from b2cal_assets.backends.slurm import SlurmBackend
from b2cal_assets_tests.fixtures.services import XRD_TEST_ENV

READ_SCRIPT = """
import sys, uproot
with uproot.open(sys.argv[1]) as f:
    x = f["hits"]["x"].array(library="np")
print(len(x), float(x.sum()))
"""


@pytest.mark.parametrize(
    ("path", "prefix", "expected"),
    [
        ("/calib/e12/r00042.root", "root://127.0.0.1:1094/", "root://127.0.0.1:1094//calib/e12/r00042.root"),
        ("/calib/e12/r00042.root", "root://127.0.0.1:1094", "root://127.0.0.1:1094//calib/e12/r00042.root"),
        ("/calib/f.root", None, "/calib/f.root"),
        ("/calib/f.root", "", "/calib/f.root"),
        ("/calib/f.root", "/gpfs/belle2", "/gpfs/belle2/calib/f.root"),
        ("root://other:1094//calib/f.root", "root://127.0.0.1:1094/", "root://other:1094//calib/f.root"),
    ],
)
def test_prefixed_puts_the_sites_prefix_in_front_of_input_paths(path, prefix, expected):
    assert prefixed(path, prefix) == expected


@pytest.fixture
def root_file(xrootd_server):
    """A small ROOT file in the exported directory; removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:8]}.root"
    path = xrootd_server.directory / name
    x = np.arange(100, dtype=np.float64)
    with uproot.recreate(path) as f:
        f["hits"] = {"x": x}
    path.chmod(0o644)
    yield name, x
    path.unlink(missing_ok=True)


@pytest.mark.xrootd
def test_uproot_reads_a_tree_through_root_url(xrootd_server, root_file, monkeypatch):
    name, x = root_file
    for key, value in XRD_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    with uproot.open(xrootd_server.url_for(name)) as f:
        np.testing.assert_array_equal(f["hits"]["x"].array(library="np"), x)


@pytest.mark.xrootd
@pytest.mark.slurm
@pytest.mark.slow
def test_a_slurm_job_reads_its_input_through_xrootd(tmp_path, slurm_cluster, xrootd_server, root_file):
    name, x = root_file
    url = prefixed(f"/calib/{name}", xrootd_server.url)
    workdir = tmp_path / "reader"
    workdir.mkdir()
    env = {**xrootd_env(), **XRD_TEST_ENV}
    spec = JobSpec("xrootd_reader", (sys.executable, "-c", READ_SCRIPT, url), workdir, env=env)
    backend = SlurmBackend(runner=SubprocessRunner(env=slurm_cluster))
    handles = backend.submit([spec])
    deadline = time.monotonic() + 180
    while True:
        status = backend.poll(handles).get(handles[0].job_id)
        if status is not None and status.state.finished:
            break
        assert time.monotonic() < deadline, f"the reading job did not finish: {status}"
        time.sleep(0.5)
    stderr = (workdir / "stderr").read_text()
    assert status.state == JobState.DONE, stderr
    assert (workdir / "stdout").read_text().split() == [str(len(x)), str(float(x.sum()))]
