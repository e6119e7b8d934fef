"""A calibration script's resource requests work on every backend (scripts know no backend)."""

from pathlib import Path

import pytest

from b2cal_assets.backends.base import BackendError, JobSpec
from b2cal_assets.backends.commands import memory_in_mb, merged_options


def spec(**backend_args) -> JobSpec:
    return JobSpec(name="cal.0.0", argv=("true",), workdir=Path("/tmp"), backend_args=backend_args)


@pytest.mark.parametrize(
    ("text", "mb"), [("4 GB", 4096), ("4G", 4096), ("4096", 4096), ("512MB", 512), ("2GiB", 2048)]
)
def test_memory_sizes(text, mb):
    assert memory_in_mb(text) == mb


def test_htcondor_style_requests_are_translated_for_slurm_and_lsf():
    slurm = merged_options(
        {"partition": "calib"}, spec(request_memory="4 GB"), ["partition", "memory"], "Slurm"
    )
    assert slurm == {"partition": "calib", "memory": "4096M"}
    lsf = merged_options({}, spec(request_memory="4 GB", request_cpus=2), ["memory", "slots"], "LSF")
    assert lsf == {"memory": "4096MB", "slots": 2}
    condor = merged_options({}, spec(memory="2G"), ["request_memory"], "HTCondor")
    assert condor == {"request_memory": "2G"}


def test_a_typo_is_still_an_error_naming_the_known_options():
    with pytest.raises(BackendError, match=r"unknown Slurm option\(s\) memroy; known options are memory"):
        merged_options({}, spec(memroy="4G"), ["memory"], "Slurm")
    with pytest.raises(BackendError, match="is not a size"):
        merged_options({}, spec(request_memory="lots"), ["memory"], "Slurm")
