"""``.ci/services/xrootd.sh`` is safe to run again: a running server is reused, not restarted."""

from __future__ import annotations

import subprocess

import pytest

from b2cal_assets_tests.fixtures.services import SERVICES, STATE_DIR

pytestmark = pytest.mark.xrootd


def test_running_the_start_script_again_keeps_the_server_and_prints_its_env(xrootd_server):
    port = xrootd_server.url.rstrip("/").rsplit(":", 1)[1]
    proc = subprocess.run(
        ["bash", str(SERVICES / "xrootd.sh"), str(STATE_DIR), port],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "already running" in proc.stderr
    assert f"export B2CAL_XROOTD_URL={xrootd_server.url}" in proc.stdout.splitlines()
