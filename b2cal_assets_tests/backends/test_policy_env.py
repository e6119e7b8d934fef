"""Every backend, the local one included, takes the retry delay and poll settings from the environment."""

import pytest

from b2cal_assets.defs.definitions import backend_resources


def test_every_backend_honours_the_retry_and_poll_settings(monkeypatch):
    monkeypatch.setenv("B2CAL_BATCH_RETRY_DELAY_S", "2.5")
    monkeypatch.setenv("B2CAL_BATCH_POLL_INTERVAL_S", "0.25")
    monkeypatch.setenv("B2CAL_BATCH_MAX_FAILED_POLLS", "7")
    resources = backend_resources()
    assert set(resources) == {"local_backend", "slurm_backend", "htcondor_backend", "lsf_backend"}
    for name, resource in resources.items():
        assert resource.retry_policy().retry_delay_s == 2.5, name
        assert resource.submit_policy().poll_interval_s == 0.25, name
        assert resource.submit_policy().max_failed_polls == 7, name


def test_unset_the_local_backend_keeps_its_short_defaults(monkeypatch):
    for var in ("B2CAL_BATCH_RETRY_DELAY_S", "B2CAL_BATCH_POLL_INTERVAL_S", "B2CAL_BATCH_MAX_FAILED_POLLS"):
        monkeypatch.delenv(var, raising=False)
    resources = backend_resources()
    assert resources["local_backend"].retry_delay_s == 5.0
    assert resources["slurm_backend"].retry_delay_s == 1800.0
    assert resources["local_backend"].submit_policy().max_failed_polls == 5


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "soon"])
def test_a_bad_setting_is_named(monkeypatch, value):
    monkeypatch.setenv("B2CAL_BATCH_RETRY_DELAY_S", value)
    with pytest.raises(ValueError, match="B2CAL_BATCH_RETRY_DELAY_S="):
        backend_resources()
