"""``.ci/services/slurm.sh`` is safe to run again: a running cluster is reused, not restarted."""

from __future__ import annotations

import subprocess

import pytest

from b2cal_assets_tests.fixtures.services import SERVICES, STATE_DIR

pytestmark = pytest.mark.slurm


def test_running_the_start_script_again_keeps_the_cluster_and_prints_its_env(slurm_cluster):
    pid_file = STATE_DIR / "slurm" / "run" / "slurmctld.pid"
    pid_before = pid_file.read_text() if pid_file.exists() else None
    proc = subprocess.run(
        ["bash", str(SERVICES / "slurm.sh"), str(STATE_DIR)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"export SLURM_CONF={slurm_cluster['SLURM_CONF']}"
    if pid_before is not None:
        assert pid_file.read_text() == pid_before
