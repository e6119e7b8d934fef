"""The CLI applies the page's rules: the login name acts, ``--as`` is for managers, the loop's own names
are nobody's, managers' actions need a manager, and a reassignment names someone in the directory.
Each refusal is written as the command an expert would type, and checks that nothing changed."""

from __future__ import annotations

import pytest

from b2cal_assets.cli import identity, main
from b2cal_assets.db.repo import attempts
from b2cal_assets_tests.loop.conftest import T0, clock, loop  # noqa: F401
from b2cal_assets_tests.loop.helpers import snapshot_db


class Cli:
    """``cli(os_user, *argv) -> (exit code, stderr + stdout)``; ``cli.service`` is the toy loop."""

    def __init__(self, service, monkeypatch, capsys):
        self.service, self.monkeypatch, self.capsys = service, monkeypatch, capsys

    def __call__(self, os_user: str, *argv: str) -> tuple[int, str]:
        self.monkeypatch.setattr(identity, "_os_user", lambda: os_user)
        code = main(list(argv))
        out = self.capsys.readouterr()
        return code, out.err + out.out


@pytest.fixture
def cli(loop, monkeypatch, capsys):  # noqa: F811
    """The toy loop with its windows open, driven by the command line."""
    loop.tick(now=T0)
    return Cli(loop, monkeypatch, capsys)


@pytest.fixture
def managers(monkeypatch):
    monkeypatch.delenv("B2CAL_LDAP_URL", raising=False)
    monkeypatch.setenv(identity.MANAGERS_ENV, "mary")


def test_an_expert_may_not_submit_anothers_calibration_or_act_as_them(cli, managers):
    before = snapshot_db(cli.service)
    code, text = cli("bob", "submit", "prompt_now", "toy_a", "--set", "scale=2")
    assert code == 2 and "bob may not submit toy_a in processing prompt_now" in text and "alice" in text
    code, text = cli("bob", "submit", "prompt_now", "toy_a", "--as", "alice")
    assert code == 2 and "only a calibration manager may act as another user" in text
    code, text = cli("bob", "signoff", "prompt_now", "toy_a", "--accept")
    assert code == 2 and "bob may not sign off toy_a" in text
    code, text = cli("bob", "manage", "exclude", "prompt_now", "toy_a")
    assert code == 2 and "b2cal manage exclude is for calibration managers" in text
    assert snapshot_db(cli.service) == before


def test_the_assigned_expert_and_a_manager_acting_for_them_may(cli, managers):
    code, text = cli("alice", "submit", "prompt_now", "toy_a", "--set", "scale=1.5")
    assert code == 0, text
    code, text = cli("mary", "submit", "prompt_now", "toy_a", "--set", "scale=1.2", "--as", "alice")
    assert code == 0, text
    with cli.service.session() as s:
        latest = attempts.latest_attempt(s, "prompt_now", "toy_a")
        assert (latest.submitted_by, latest.expert_config) == ("alice", {"scale": 1.2})


@pytest.mark.parametrize("os_user, as_user", [("auto", None), ("mary", "auto"), ("mary", "UI")])
def test_the_loops_own_user_names_are_nobodys(cli, managers, os_user, as_user):
    before = snapshot_db(cli.service)
    argv = ["manage", "restart", "prompt_now", "toy_a"] + (["--as", as_user] if as_user else [])
    code, text = cli(os_user, *argv)
    assert code == 2 and "the loop's own user" in text
    code, text = cli("mary", "manage", "reassign", "prompt_now", "toy_a", "Auto")
    assert code == 2 and "the loop's own user name" in text
    assert snapshot_db(cli.service) == before


@pytest.fixture
def directory(ldap_server, monkeypatch):
    """The CLI's roles and user lookups from the real slapd, as a deployment configures them."""
    monkeypatch.setenv("B2CAL_LDAP_URL", ldap_server.url)
    monkeypatch.setenv("B2CAL_LDAP_USER_DN_TEMPLATE", f"uid={{username}},{ldap_server.people_dn}")
    monkeypatch.setenv("B2CAL_LDAP_GROUP_BASE", ldap_server.groups_dn)
    monkeypatch.setenv("B2CAL_LDAP_BIND_DN", ldap_server.service_dn)
    monkeypatch.setenv("B2CAL_LDAP_BIND_PASSWORD", ldap_server.service_password)
    monkeypatch.delenv(identity.MANAGERS_ENV, raising=False)


@pytest.mark.ldap
def test_roles_and_reassignments_follow_the_directory(cli, directory):
    before = snapshot_db(cli.service)
    code, text = cli("nora", "submit", "prompt_now", "toy_a")  # in the directory, in no b2cal group
    assert code == 2 and "nora may not change the loop" in text and "no b2cal role" in text
    code, text = cli("Auto", "manage", "exclude", "prompt_now", "toy_a")  # a manager named like the loop
    assert code == 2 and "the loop's own user" in text
    code, text = cli("alice", "manage", "restart", "prompt_now", "toy_a")  # an expert
    assert code == 2 and "for calibration managers; you are alice (expert)" in text
    code, text = cli("mary", "manage", "reassign", "prompt_now", "toy_a", "ghost")
    assert code == 2 and "no user 'ghost' in the directory" in text
    assert snapshot_db(cli.service) == before
    code, text = cli("mary", "manage", "reassign", "prompt_now", "toy_a", "bob")
    assert code == 0 and "reassigned to bob" in text and "not checked" not in text
    code, text = cli("bob", "submit", "prompt_now", "toy_a", "--set", "scale=1.1")
    assert code == 0, text
