"""Who acts on the command line, and with which role: the same rules as the calibration pages.

- The acting person is the operating-system user running ``b2cal`` (not an option or a variable
  anyone could set). ``--as NAME`` records a decision under another name (a manager acting for an
  expert); only a calibration manager or admin may use it.
- Roles come from the lab's directory when ``B2CAL_LDAP_URL`` is set (the groups of the login's role
  mapping, ``B2CAL_ROLE_<ROLE>_GROUPS``); otherwise ``B2CAL_MANAGERS`` (comma-separated user names)
  lists the managers and everyone else is an expert. With neither, the installation is a single
  person's (a laptop, ``make demo``): that user is a manager.
- The loop's own user names (``auto``, ``ui``) are never a person's.

This is the same rule the page applies, not a security boundary of its own: whoever can run ``b2cal``
against the calibration database holds its credentials.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass

from b2cal_assets.cli import UserError
from b2cal_assets.cli.errors import user_errors
from b2cal_assets.loop.authority import OVERRIDING_ROLES, is_reserved_username, require_authority
from b2cal_assets.loop.records import LoopError
from b2cal_assets.settings import env_name, settings
from b2cal_assets.web.config import ConfigError, load_directory_config
from b2cal_assets.web.ldap_auth import DirectoryUnavailable, LdapAuthenticator
from b2cal_assets.web.roles import role_for_groups

MANAGERS_ENV = env_name("managers")


@dataclass(frozen=True)
class Actor:
    """The person a command acts as (``name``) and the role of the one who runs it."""

    name: str
    role: str  # viewer | expert | manager | admin
    os_user: str

    @property
    def is_manager(self) -> bool:
        return self.role in OVERRIDING_ROLES


def add_as_argument(parser) -> None:
    parser.add_argument(
        "--as",
        "--user",
        dest="as_user",
        default=None,
        metavar="NAME",
        help="record the decision under NAME (managers only; default: you, the login name)",
    )


def _os_user() -> str:
    return getpass.getuser()


def role_of(username: str) -> str:
    """The CLI role of ``username``: the directory's, else ``B2CAL_MANAGERS``, else a single user's."""

    try:
        config = load_directory_config()
    except ConfigError as exc:
        raise UserError(f"the directory settings are wrong, so your role is unknown: {exc}") from None
    if config is not None:

        try:
            groups = LdapAuthenticator(config.ldap).groups_of(username)
        except DirectoryUnavailable as exc:
            raise UserError(
                f"the directory could not be asked for your role; nothing was changed: {exc}"
            ) from None
        role = role_for_groups(groups, config.role_groups)
        return role.label if role is not None else "none"
    managers = settings().managers
    if managers is None:
        return "manager"  # one person's installation
    return "manager" if username in {m.strip() for m in managers.split(",") if m.strip()} else "expert"


def acting(args) -> Actor:
    """The actor of a decision command; refuses ``--as`` below manager and the loop's own names."""
    os_user = _os_user()
    if is_reserved_username(os_user):
        raise UserError(f"the login name {os_user!r} is the loop's own user; run b2cal as yourself")
    role = role_of(os_user)
    if role in ("none", "viewer"):
        raise UserError(
            f"{os_user} may not change the loop: the directory gives them "
            + ("no b2cal role" if role == "none" else "the viewer role")
            + "; ask a calibration manager"
        )
    name = (getattr(args, "as_user", None) or "").strip() or os_user
    if name != os_user:
        if role not in OVERRIDING_ROLES:
            raise UserError(
                f"only a calibration manager may act as another user (--as {name}); you are {os_user} ({role}). "
                "Drop --as to act as yourself"
            )
        if is_reserved_username(name):
            raise UserError(f"{name!r} is the loop's own user name, not a person; --as names a person")
    return Actor(name=name, role=role, os_user=os_user)


def require_manager(actor: Actor, what: str) -> None:
    if not actor.is_manager:
        raise UserError(
            f"{what} is for calibration managers; you are {actor.os_user} ({actor.role}). Ask a manager"
        )


def require_calibration_authority(
    service, actor: Actor, processing: str, calibration: str, action: str
) -> None:
    """The page's rule (``loop/authority.py``): the assigned expert, or a manager."""

    with user_errors():
        require_authority(service, processing, calibration, by=actor.name, role=actor.role, action=action)


def directory_lookup() -> Callable[[str], str | None] | None:
    """The directory's user lookup for a reassignment, or None when no directory is configured."""

    try:
        config = load_directory_config()
    except ConfigError as exc:
        raise UserError(f"the directory settings are wrong: {exc}") from None
    if config is None:
        return None

    directory = LdapAuthenticator(config.ldap)

    def find(username: str) -> str | None:
        try:
            return directory.find_user(username)
        except DirectoryUnavailable as exc:
            raise LoopError(
                f"the directory could not be asked whether {username!r} exists; nothing was changed: {exc}"
            ) from None

    return find
