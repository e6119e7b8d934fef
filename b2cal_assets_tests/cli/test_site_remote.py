"""``b2cal site add/update/list`` for a remote site: its submit host, key, known_hosts and remote root."""

import json

import pytest

from b2cal_assets.loop import admin
from b2cal_assets_tests.cli.test_bad_input import run, snapshot
from b2cal_assets_tests.defs.conftest import toy_home  # noqa: F401


@pytest.fixture
def ssh_files(tmp_path):
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text("10.231.1.2 ssh-ed25519 AAAA\n")
    return key, known


def add(key, known, *extra):
    return [
        "site", "add", "kek", "--backend", "slurm", "--storage-root", "/group/belle2/calib",
        "--submit-host", "calib@kekcc.example:2222", "--ssh-key", str(key), "--known-hosts", str(known),
        "--remote-root", "/group/belle2/b2cal", "--signoff", "automatic", *extra,
    ]  # fmt: skip


def test_a_remote_site_is_added_listed_and_updated(toy_home, ssh_files, capsys):  # noqa: F811
    key, known = ssh_files
    code, out, err = run(capsys, *add(key, known))
    assert (code, err) == (0, "")
    assert "submit host calib@kekcc.example:2222" in out
    spec = admin.site_spec("kek")
    assert spec.remote is not None
    assert (spec.remote.user, spec.remote.host, spec.remote.port) == ("calib", "kekcc.example", 2222)
    assert (spec.remote.ssh_key, spec.remote.known_hosts) == (str(key), str(known))
    code, out, _ = run(capsys, "site", "list")
    assert code == 0 and "calib@kekcc.example:2222" in out and "/group/belle2/b2cal" in out
    # an update changes what it names and keeps the rest
    code, _, err = run(
        capsys, "site", "update", "kek", "--remote-root", "/scratch/b2cal", "--signoff", "manual"
    )
    assert (code, err) == (0, "")
    spec = admin.site_spec("kek")
    assert spec.remote is not None and spec.remote.remote_root == "/scratch/b2cal"
    assert spec.remote.submit_host == "calib@kekcc.example:2222" and str(spec.signoff_policy) == "manual"
    code, out, _ = run(capsys, "site", "list", "--json")
    (site,) = [s for s in json.loads(out)["sites"] if s["name"] == "kek"]
    assert site["remote_root"] == "/scratch/b2cal" and site["ssh_key"] == str(key)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--submit-host", "calib@@kek"], "submit_host"),
        (["--submit-host", "calib@kek:0"], "port 0"),
        (["--known-hosts", "/no/such/known_hosts"], "--known-hosts"),
        (["--ssh-key", "/no/such/key"], "--ssh-key"),
        (["--remote-root", "relative/dir"], "remote_root"),
        (["--remote-root", "/with space"], "remote_root"),
        (["--remote-python", "python3; rm -rf /"], "remote_python"),
        (["--backend", "local"], "needs a batch backend"),
    ],
)
def test_bad_remote_settings_are_one_line_and_store_nothing(toy_home, ssh_files, capsys, change, named):  # noqa: F811
    key, known = ssh_files
    argv = add(key, known)
    for option, value in zip(change[::2], change[1::2], strict=True):
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
    before = snapshot(toy_home)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert named in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(toy_home) == before


def test_a_key_others_can_read_and_a_missing_known_hosts_are_refused(toy_home, ssh_files, capsys):  # noqa: F811
    key, known = ssh_files
    key.chmod(0o644)
    code, _, err = run(capsys, *add(key, known))
    assert code == 2 and "chmod 600" in err
    key.chmod(0o600)
    argv = add(key, known)
    i = argv.index("--known-hosts")
    del argv[i : i + 2]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "needs --known-hosts" in err
    code, _, err = run(capsys, "site", "update", "no_such_site", "--remote-root", "/x")
    assert code == 2 and "no_such_site" in err


def test_an_update_keeps_the_runner_and_a_remote_site_refuses_the_framework_runner(toy_home, ssh_files, capsys):  # noqa: F811
    key, known = ssh_files
    code, _, err = run(capsys, "site", "add", "desy", "--backend", "local", "--storage-root", "/tmp",
                       "--runner", "framework", "--framework-setup", "true")  # fmt: skip
    assert (code, err) == (0, "")
    code, _, err = run(capsys, "site", "update", "desy", "--signoff", "automatic")
    assert (code, err) == (0, "")
    spec = admin.site_spec("desy")
    assert str(spec.runner) == "framework" and dict(spec.runner_args)["setup"] == ["true"]
    before = snapshot(toy_home)
    code, _, err = run(capsys, *add(key, known, "--runner", "framework"))
    assert code == 2 and "a remote site (--submit-host) uses the b2cal runner" in err
    assert snapshot(toy_home) == before  # nothing written
    code, _, err = run(capsys, "site", "update", "desy", "--runner", "b2cal")
    assert (code, err) == (0, "")
    assert str(admin.site_spec("desy").runner) == "b2cal" and dict(admin.site_spec("desy").runner_args) == {}
