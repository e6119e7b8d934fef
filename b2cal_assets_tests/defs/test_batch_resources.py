"""The batch resources offer exactly the options their backends declare, and hand them on unchanged."""

import pytest

from b2cal_assets.backends.base import BackendError
from b2cal_assets.backends.htcondor import HTCondorBackend, HTCondorOptions
from b2cal_assets.backends.lsf import LSFBackend, LSFOptions
from b2cal_assets.backends.slurm import SlurmBackend, SlurmOptions, render_array_script
from b2cal_assets.defs.batch_resources import (
    HTCondorBackendResource,
    LSFBackendResource,
    SlurmBackendResource,
)

CASES = [
    (SlurmBackendResource, SlurmBackend, SlurmOptions),
    (HTCondorBackendResource, HTCondorBackend, HTCondorOptions),
    (LSFBackendResource, LSFBackend, LSFOptions),
]


@pytest.mark.parametrize(("resource", "backend", "options"), CASES, ids=["slurm", "htcondor", "lsf"])
def test_every_option_and_site_setting_is_a_resource_field(resource, backend, options):
    fields = set(resource.model_fields)
    assert set(options.names()) <= fields
    assert set(backend.site_settings()) <= fields


def test_the_slurm_resource_configures_the_scripts(tmp_path):
    built = SlurmBackendResource(
        partition="belle", memory="2G", cpus=2, extra_lines=["module load basf2"], max_array_size=50
    ).build_backend()
    assert isinstance(built, SlurmBackend)
    assert built.max_array_size == 50
    script = render_array_script(tmp_path / "m.txt", 2, built.options, job_name="j", log_dir=tmp_path)
    for line in ("#SBATCH --partition=belle", "#SBATCH --mem=2G", "#SBATCH --cpus-per-task=2", "module load basf2"):
        assert line in script.splitlines()


def test_a_bad_option_value_is_refused_naming_the_option():
    with pytest.raises(BackendError, match="option memory"):
        SlurmBackendResource(memory="2G; rm -rf /").build_backend()
