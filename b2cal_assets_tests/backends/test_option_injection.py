"""Batch options never reach a batch script as shell (issue 10, item 2): a launch's ``backend_args``
with a newline, a quote or ``extra_lines`` is refused before anything is written or submitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from b2cal_assets.backends.base import BackendError, JobSpec
from b2cal_assets.backends.htcondor import HTCondorBackend, HTCondorOptions, render_submit_description
from b2cal_assets.backends.lsf import LSFBackend
from b2cal_assets.backends.slurm import SlurmBackend, SlurmOptions, render_array_script
from b2cal_assets.domain.settings import ContractError
from b2cal_assets.loop.submission import checked_submission
from b2cal_assets_tests.fixtures.services import ScriptedRunner

ATTACKS = {
    "slurm": [
        {"partition": "belle\n#SBATCH --uid=0\ntouch /tmp/pwned"},
        {"memory": "2G; touch /tmp/pwned"},
        {"queue": "short$(touch /tmp/pwned)"},  # an alias of partition
        {"extra_lines": ["touch /tmp/pwned"]},
        {"cpus": "1\ntouch /tmp/pwned"},
    ],
    "lsf": [
        {"queue": "short\ntouch /tmp/pwned"},
        {"resources": 'rusage[mem=1]" ; touch /tmp/pwned ; "'},
        {"memory": "`touch /tmp/pwned`"},
        {"extra_lines": "touch /tmp/pwned"},
    ],
    "htcondor": [
        {"request_memory": "2 GB\nexecutable = /bin/sh"},
        {"accounting_group": "belle\n+Owner = \"root\""},
        {"extra_lines": ["executable = /bin/sh"]},
    ],
}
BACKENDS = {"slurm": SlurmBackend, "lsf": LSFBackend, "htcondor": HTCondorBackend}


def _spec(tmp_path: Path, backend_args: dict) -> JobSpec:
    workdir = tmp_path / "jobs" / "job0"
    workdir.mkdir(parents=True)
    return JobSpec("collector_0", ("echo", "0"), workdir, backend_args=backend_args)


@pytest.mark.parametrize(
    ("backend", "args"), [(b, a) for b, attacks in ATTACKS.items() for a in attacks]
)
def test_injected_backend_args_are_refused_and_nothing_is_written(tmp_path, backend, args):
    runner = ScriptedRunner(answers={})  # any command run would fail the test (KeyError)
    submit_dir = tmp_path / "submit"
    instance = BACKENDS[backend](runner=runner, submit_dir=submit_dir)
    spec = _spec(tmp_path, args)
    with pytest.raises(BackendError) as refused:
        instance.submit([spec])
    assert "\n" not in str(refused.value).split(":", 1)[0]
    assert runner.calls == []
    assert not submit_dir.exists()
    assert list(spec.workdir.iterdir()) == []  # not even the wrapper


@pytest.mark.parametrize("args", [a for attacks in ATTACKS.values() for a in attacks])
def test_a_submission_with_such_args_is_refused_before_anything_is_recorded(args):
    class Settings:
        expert_config: dict = {}
        input_data_names: tuple = ()
        name = "caf_x"

    with pytest.raises(ContractError, match="backend_args"):
        checked_submission(Settings(), {}, {"backend_args": args})


def test_site_configuration_is_checked_too_but_keeps_its_extra_lines(tmp_path):
    with pytest.raises(BackendError, match="partition"):
        SlurmBackend.from_config({"partition": "a\nb"})
    backend = SlurmBackend.from_config({"partition": "belle", "extra_lines": ["module load basf2"]})
    assert backend.options.extra_lines == ("module load basf2",)


def test_paths_in_rendered_scripts_are_quoted_or_refused(tmp_path):
    manifest = tmp_path / "a$(touch pwned)" / "manifest.txt"
    script = render_array_script(manifest, 1, SlurmOptions(), job_name="x", log_dir=tmp_path)
    assert f"'{manifest}'" in script and f"in {manifest}" not in script
    with pytest.raises(BackendError, match="log directory"):
        render_array_script(manifest, 1, SlurmOptions(), job_name="x", log_dir=tmp_path / "a b")
    with pytest.raises(BackendError, match="log directory"):
        render_submit_description(
            tmp_path / "m.txt", HTCondorOptions(), batch_name="x", log_dir=tmp_path / "x\nexecutable=/bin/sh"
        )
