"""Every command group is there, and one that cannot be imported stops the command instead of vanishing."""

import pytest

from b2cal_assets import cli


def test_every_command_group_is_registered():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(cli.COMMAND_MODULES) <= set(commands)


def test_a_command_module_that_fails_to_import_is_fatal(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "no_such_group"))
    with pytest.raises(ModuleNotFoundError, match=r"b2cal_assets\.cli\.no_such_group"):
        cli.build_parser()
