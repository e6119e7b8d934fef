import pytest

from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.processing import (
    ProcessingKind,
    ProcessingSpec,
    SignoffPolicy,
    SiteSpec,
    validate_processing_name,
)
from b2cal_assets.domain.settings import ContractError


def test_valid_processing_names():
    for name in ("prompt_e26_b3", "reproc-2024.v2", "A1"):
        assert validate_processing_name(name) == name


def test_processing_name_longer_than_64_explains_the_limit():
    with pytest.raises(
        ContractError, match=r"65 characters long; at most 64 \(Dagster partition keys.*MySQL"
    ):
        validate_processing_name("p" * 65)


def test_processing_name_bad_characters_are_listed():
    with pytest.raises(ContractError, match=r"contains ' ', '/'; use only letters, digits"):
        validate_processing_name("prompt b3/x")


def test_processing_name_empty_or_leading_dot():
    with pytest.raises(ContractError, match="non-empty"):
        validate_processing_name("")
    with pytest.raises(ContractError, match="must start with a letter or a digit"):
        validate_processing_name(".hidden")


def test_processing_spec_defaults_and_parsing():
    spec = ProcessingSpec("prompt_b3", "prompt", "kekcc", "26,0,26,500", ["gt_online"])
    assert spec.kind is ProcessingKind.PROMPT
    assert spec.iov == IoV(26, 0, 26, 500)
    assert spec.global_tags == ("gt_online",)
    assert spec.window_hours == 48.0


def test_processing_spec_errors_name_the_field():
    with pytest.raises(ContractError, match="kind: 'weekly' is not one of prompt, reprocessing"):
        ProcessingSpec("p", "weekly", "kekcc", IoV(26, 0))
    with pytest.raises(ContractError, match=r"iov: .*high end is before the low end"):
        ProcessingSpec("p", "prompt", "kekcc", IoV(26, 10, 26, 5))
    with pytest.raises(ContractError, match="window_hours: must be a finite number of hours from 0"):
        ProcessingSpec("p", "prompt", "kekcc", IoV(26, 0), window_hours=-1)
    assert ProcessingSpec("p", "prompt", "kekcc", IoV(26, 0), window_hours=0).window_hours == 0.0  # no window
    with pytest.raises(ContractError, match="global_tags: must be a list"):
        ProcessingSpec("p", "prompt", "kekcc", IoV(26, 0), global_tags="gt_online")


def test_site_spec():
    site = SiteSpec(
        "bnl", "HTCondor", {"request_memory": "4 GB"}, "/data/b2cal", "root://xrd:1094/", "automatic"
    )
    assert site.backend == "htcondor"
    assert site.signoff_policy is SignoffPolicy.AUTOMATIC
    assert site.input_path("/data/f.root") == "root://xrd:1094//data/f.root"
    assert site.input_path("root://other//f.root") == "root://other//f.root"


def test_site_spec_errors():
    with pytest.raises(ContractError, match="backend: 'pbs' is not one of local, slurm, htcondor, lsf"):
        SiteSpec("kek", "pbs", storage_root="/data")
    with pytest.raises(ContractError, match="storage_root: a site needs a storage root"):
        SiteSpec("kek", "lsf")
    with pytest.raises(ContractError, match="signoff_policy: 'sometimes' is not one of automatic, manual"):
        SiteSpec("kek", "lsf", storage_root="/data", signoff_policy="sometimes")


@pytest.mark.parametrize("hours", [float("inf"), float("nan"), 1e308])
def test_window_hours_must_be_finite_and_sane(hours):
    with pytest.raises(ContractError, match="window_hours: must be a finite number"):
        ProcessingSpec("p", "prompt", "kekcc", IoV(26, 0), window_hours=hours)


@pytest.mark.parametrize("iov", [IoV(0, 0, 1, 2**31), IoV(2**31, 0, -1, -1), IoV(1, 10**20, -1, -1)])
def test_iov_numbers_fit_a_signed_32_bit_integer_on_every_engine(iov):
    with pytest.raises(ContractError, match="out of range"):
        ProcessingSpec("p", "prompt", "kekcc", iov)
