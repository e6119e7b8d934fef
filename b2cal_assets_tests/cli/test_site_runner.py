"""``b2cal site create|add|update --runner framework``: stored, shown, checked; bad values one line."""

import json

import pytest

from b2cal_assets.cli import main
from b2cal_assets.domain.settings import ContractError
from b2cal_assets.domain.site_runner import RunnerKind, check_runner, framework_settings
from b2cal_assets_tests.defs.conftest import toy_home  # noqa: F401


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _sites(capsys):
    code, out, _ = run(capsys, "site", "list", "--json")
    assert code == 0
    return {s["name"]: s for s in json.loads(out)["sites"]}


def test_a_site_turns_the_framework_runner_on_and_off(toy_home, capsys, tmp_path):  # noqa: F811
    base = ["--backend", "slurm", "--storage-root", str(tmp_path)]
    assert run(capsys, "site", "add", "kek", *base)[0] == 0
    assert _sites(capsys)["kek"]["runner"] == "b2cal"  # the default: b2cal's own runner
    setup = "source /cvmfs/belle.cern.ch/tools/b2setup release-08-01-00"
    code, out, _ = run(
        capsys,
        "site",
        "update",
        "kek",
        *base,
        "--runner",
        "framework",
        "--framework-setup",
        setup,
        "--framework-setup",
        "export X=1",
        "--heartbeat",
        "30",
    )
    assert code == 0 and "runner framework" in out
    kek = _sites(capsys)["kek"]
    assert kek["runner"] == "framework"
    # a Slurm site: the framework has no Slurm backend, its collectors run Local inside the one job
    assert kek["runner_args"] == {"setup": [setup, "export X=1"], "backend": "Local", "heartbeat": 30}
    code, out, _ = run(capsys, "site", "list")
    (row,) = [line for line in out.splitlines() if line.startswith("kek ")]
    assert "framework (Local, heartbeat 30 s, source /cvmfs" in row
    assert (
        run(capsys, "site", "create", "kek", *base, "--runner", "framework", "--framework-backend", "PBS")[0]
        == 0
    )
    assert _sites(capsys)["kek"]["runner_args"] == {"setup": [], "backend": "PBS", "heartbeat": 60}
    assert run(capsys, "site", "create", "kek", *base)[0] == 0
    assert _sites(capsys)["kek"]["runner"] == "b2cal" and _sites(capsys)["kek"]["runner_args"] == {}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--runner", "basf2"], "--runner: invalid choice: 'basf2'"),
        (["--runner", "framework", "--framework-backend", "Slurm"], "--framework-backend: invalid choice"),
        (["--runner", "framework", "--heartbeat", "0"], "--heartbeat"),
        (
            ["--framework-setup", "source x"],
            "--framework-setup is a setting of the framework runner; add --runner framework",
        ),
        (["--heartbeat", "5"], "--heartbeat is a setting of the framework runner"),
        (["--runner", "framework", "--framework-setup", " "], "runner_args.setup"),
        (["--framework-container", "b2cal:latest"], "--framework-container is a setting of the framework runner"),
        (["--runner", "framework", "--framework-container", "b2cal latest"], "runner_args.container"),
    ],
)
def test_bad_runner_settings_get_one_line_and_store_nothing(toy_home, capsys, tmp_path, extra, message):  # noqa: F811
    code, _out, err = run(
        capsys, "site", "create", "s9", "--backend", "local", "--storage-root", str(tmp_path), *extra
    )
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "s9" not in _sites(capsys)


def test_the_runner_settings_are_checked_in_the_domain():
    assert check_runner("Framework", {}, "htcondor") == (
        RunnerKind.FRAMEWORK,
        {"setup": [], "backend": "HTCondor", "heartbeat": 60},
    )
    assert framework_settings({"setup": ["a", "b"], "heartbeat": 5}, "lsf").backend == "LSF"
    for runner, args, field, reason in [
        ("basf2", {}, "runner", "not one of b2cal, framework"),
        ("b2cal", {"setup": ["x"]}, "runner_args", "only a site with runner framework"),
        ("framework", [], "runner_args", "must be a dict"),
        ("framework", {"queue": "l"}, "runner_args", "unknown key 'queue'"),
        ("framework", {"setup": "source x"}, "runner_args.setup", "list of non-empty shell commands"),
        ("framework", {"setup": ["a\nb"]}, "runner_args.setup", "one line"),
        ("framework", {"backend": "Slurm"}, "runner_args.backend", "not one of b2caf-prompt-run's"),
        ("framework", {"heartbeat": True}, "runner_args.heartbeat", "whole number"),
        ("framework", {"heartbeat": 0}, "runner_args.heartbeat", ">= 1"),
        ("framework", {"container": ""}, "runner_args.container", "one image name"),
        ("framework", {"container": 7}, "runner_args.container", "one image name"),
    ]:
        with pytest.raises(ContractError) as info:
            check_runner(runner, args, "local")
        assert info.value.field == field and reason in info.value.message, (runner, args, str(info.value))


def test_a_framework_site_runs_its_one_job_in_a_container_when_given_an_image(toy_home, capsys, tmp_path):  # noqa: F811
    base = ["--backend", "local", "--storage-root", str(tmp_path), "--runner", "framework"]
    code, _out, _ = run(capsys, "site", "add", "boxed", *base, "--framework-container", "b2cal:latest")
    assert code == 0
    assert _sites(capsys)["boxed"]["runner_args"]["container"] == "b2cal:latest"
    assert framework_settings(_sites(capsys)["boxed"]["runner_args"], "local").container == "b2cal:latest"
    code, out, _ = run(capsys, "site", "list")
    assert "in container b2cal:latest" in out
    # another `create` without it: the job runs on the site's backend again
    assert run(capsys, "site", "create", "boxed", *base)[0] == 0
    assert "container" not in _sites(capsys)["boxed"]["runner_args"]
