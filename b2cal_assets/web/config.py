"""Login configuration: a YAML or TOML file, overridden by ``B2CAL_*`` environment variables.

The variables are declared in ``settings.py`` with the rest; here they are layered over the file
(a set variable wins) and checked, a value from either source by the same rule.

Secrets (the session signing key, the LDAP service-account password) come only from the environment,
never from the file, so the file can be committed next to the deployment.

File shape (every key optional; env vars named in brackets)::

    ldap:
      url: ldaps://ldap.example.org            # [B2CAL_LDAP_URL]
      start_tls: false                         # [B2CAL_LDAP_START_TLS]
      tls_verify: true                         # [B2CAL_LDAP_TLS_VERIFY]
      ca_file: /etc/ssl/certs/lab-ca.pem       # [B2CAL_LDAP_CA_FILE]
      user_dn_template: uid={username},ou=people,dc=example,dc=org   # [B2CAL_LDAP_USER_DN_TEMPLATE]
      user_search_base: ou=people,dc=example,dc=org                  # [B2CAL_LDAP_USER_SEARCH_BASE]
      user_search_filter: (uid={username})                           # [B2CAL_LDAP_USER_SEARCH_FILTER]
      bind_dn: uid=svc,ou=services,dc=example,dc=org                 # [B2CAL_LDAP_BIND_DN]
      # bind password: only B2CAL_LDAP_BIND_PASSWORD
      group_base: ou=groups,dc=example,dc=org                        # [B2CAL_LDAP_GROUP_BASE]
      group_filter: (member={user_dn})                               # [B2CAL_LDAP_GROUP_FILTER]
      group_name_attribute: cn
      username_attribute: uid
      timeout_seconds: 5
    roles:                                     # [B2CAL_ROLE_ADMIN_GROUPS=a,b ... B2CAL_ROLE_VIEWER_GROUPS]
      admin: [b2cal-admins]
      manager: [b2cal-managers]
      expert: [b2cal-experts]
      viewer: [b2cal-viewers]
    session:
      max_age_seconds: 28800                   # [B2CAL_SESSION_MAX_AGE]
      cookie_secure: auto                      # auto | true | false  [B2CAL_COOKIE_SECURE]
    login_limits:
      max_failures_per_user: 5
      max_failures_per_address: 20
      lockout_seconds: 300
    # secret key: only B2CAL_SECRET_KEY
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from b2cal_assets.settings import Settings, SettingsError, env_name, settings
from b2cal_assets.web.roles import DEFAULT_ROLE_GROUPS, Role

MIN_SECRET_KEY_LENGTH = 32


class ConfigError(ValueError):
    """The login configuration is wrong; the message names the setting and what to do."""


@dataclass(frozen=True)
class LdapSettings:
    url: str = ""
    start_tls: bool = False
    tls_verify: bool = True
    ca_file: str = ""
    user_dn_template: str = ""
    user_search_base: str = ""
    user_search_filter: str = "(uid={username})"
    bind_dn: str = ""
    bind_password: str = ""
    group_base: str = ""
    group_filter: str = "(member={user_dn})"
    group_name_attribute: str = "cn"
    username_attribute: str = "uid"
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class SessionSettings:
    max_age_seconds: int = 8 * 3600
    cookie_secure: str = "auto"  # auto: Secure when the request came over HTTPS


@dataclass(frozen=True)
class LoginLimits:
    max_failures_per_user: int = 5
    max_failures_per_address: int = 20
    lockout_seconds: float = 300.0


@dataclass(frozen=True)
class AuthConfig:
    """Everything the login layer needs."""

    ldap: LdapSettings
    secret_key: str
    role_groups: Mapping[Role, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_ROLE_GROUPS))
    session: SessionSettings = field(default_factory=SessionSettings)
    limits: LoginLimits = field(default_factory=LoginLimits)


# the settings field (``settings.py``) of each layered key of a section
_LDAP_FIELDS = {
    key: f"ldap_{key}"
    for key in (
        "url",
        "start_tls",
        "tls_verify",
        "ca_file",
        "user_dn_template",
        "user_search_base",
        "user_search_filter",
        "bind_dn",
        "bind_password",
        "group_base",
        "group_filter",
    )
}
_SESSION_FIELDS = {"max_age_seconds": "session_max_age", "cookie_secure": "cookie_secure"}
_SECRET_KEYS = {"bind_password": env_name("ldap_bind_password"), "secret_key": env_name("secret_key")}


def _settings(current: Settings | None) -> Settings:
    """The variables now (or those given); a bad one is a ``ConfigError`` like a bad file."""
    if current is not None:
        return current
    try:
        return settings()
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"login config file {path} does not exist: pass an existing YAML or TOML file")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"login config file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"login config file {path} must hold a mapping at the top level")
    return data


def _coerce(section: str, name: str, value: Any, target: Any) -> Any:
    where = f"{section}.{name}"
    if isinstance(target, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if isinstance(target, int | float):
        try:
            number = type(target)(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
        if number <= 0:
            raise ConfigError(f"{where} must be positive, got {value!r}")
        return number
    if isinstance(value, bool):
        return str(value).lower()  # e.g. cookie_secure: true
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def _section(
    data: dict[str, Any], name: str, cls: type, current: Settings, env_fields: Mapping[str, str]
):
    raw = data.get(name) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"'{name}' in the login config must be a mapping")
    defaults = cls()
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting {name}.{unknown[0]} in the login config: known are {', '.join(sorted(known))}"
        )
    values = {}
    for key in known:
        if key in _SECRET_KEYS and key in raw:
            raise ConfigError(
                f"{name}.{key} must not be in the config file: set {_SECRET_KEYS[key]} in the environment"
            )
        value = raw.get(key)
        env_field = env_fields.get(key)
        if env_field and getattr(current, env_field):
            value = getattr(current, env_field)
        if value is not None:
            values[key] = _coerce(name, key, value, getattr(defaults, key))
    return cls(**values)


def _role_groups(data: dict[str, Any], current: Settings) -> dict[Role, tuple[str, ...]]:
    raw = data.get("roles") or {}
    if not isinstance(raw, dict):
        raise ConfigError("'roles' in the login config must map a role to a list of LDAP groups")
    result = dict(DEFAULT_ROLE_GROUPS)
    for key, groups in raw.items():
        try:
            role = Role.parse(str(key))
        except ValueError as exc:
            raise ConfigError(f"roles: {exc}") from None
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ConfigError(f"roles.{key} must be a list of LDAP group names")
        result[role] = tuple(groups)
    for role in Role:
        env_value = getattr(current, f"role_{role.label}_groups")
        if env_value is not None:  # set and empty: no group gives the role
            result[role] = tuple(g.strip() for g in env_value.split(",") if g.strip())
    return result


def load_auth_config(path: Path | str | None = None, current: Settings | None = None) -> AuthConfig:
    """Read and check the login configuration; raises ``ConfigError`` naming what is wrong."""
    current = _settings(current)
    data = _read_file(Path(path)) if path else {}
    unknown = sorted(set(data) - {"ldap", "roles", "session", "login_limits"})
    if unknown:
        raise ConfigError(
            f"unknown section {unknown[0]!r} in the login config: known are ldap, roles, session, login_limits"
        )
    if "secret_key" in data:
        raise ConfigError(
            "secret_key must not be in the config file: set B2CAL_SECRET_KEY in the environment"
        )
    ldap = _section(data, "ldap", LdapSettings, current, _LDAP_FIELDS)
    session = _section(data, "session", SessionSettings, current, _SESSION_FIELDS)
    limits = _section(data, "login_limits", LoginLimits, current, {})
    config = AuthConfig(
        ldap=ldap,
        secret_key=current.secret_key,
        role_groups=_role_groups(data, current),
        session=session,
        limits=limits,
    )
    check_auth_config(config)
    return config


def check_auth_config(config: AuthConfig) -> None:
    ldap = config.ldap
    if not ldap.url:
        raise ConfigError(
            "no LDAP server configured: set B2CAL_LDAP_URL (or ldap.url), or run `b2cal web --no-auth` on a laptop"
        )
    if not ldap.url.startswith(("ldap://", "ldaps://")):
        raise ConfigError(f"LDAP URL {ldap.url!r} must start with ldap:// or ldaps://")
    if ldap.start_tls and ldap.url.startswith("ldaps://"):
        raise ConfigError("ldap.start_tls is for ldap:// URLs; an ldaps:// URL is already encrypted")
    if bool(ldap.user_dn_template) == bool(ldap.user_search_base):
        raise ConfigError(
            "set exactly one of B2CAL_LDAP_USER_DN_TEMPLATE (e.g. uid={username},ou=people,dc=example,dc=org) "
            "or B2CAL_LDAP_USER_SEARCH_BASE (search-then-bind)"
        )
    if ldap.user_dn_template and "{username}" not in ldap.user_dn_template:
        raise ConfigError("B2CAL_LDAP_USER_DN_TEMPLATE must contain {username}")
    if ldap.user_search_base and "{username}" not in ldap.user_search_filter:
        raise ConfigError("B2CAL_LDAP_USER_SEARCH_FILTER must contain {username}")
    if ldap.bind_dn and not ldap.bind_password:
        raise ConfigError(
            "B2CAL_LDAP_BIND_DN is set but B2CAL_LDAP_BIND_PASSWORD is not: set the service account's password in the environment"
        )
    if not ldap.group_base:
        raise ConfigError(
            "no group base: set B2CAL_LDAP_GROUP_BASE (or ldap.group_base) to where the role groups live"
        )
    if "{user_dn}" not in ldap.group_filter and "{username}" not in ldap.group_filter:
        raise ConfigError("B2CAL_LDAP_GROUP_FILTER must contain {user_dn} or {username}")
    if ldap.ca_file and not Path(ldap.ca_file).is_file():
        raise ConfigError(f"LDAP CA file {ldap.ca_file} does not exist")
    if len(config.secret_key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"B2CAL_SECRET_KEY must be set to at least {MIN_SECRET_KEY_LENGTH} random characters "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    if config.session.cookie_secure not in ("auto", "true", "false"):
        raise ConfigError(
            f"session.cookie_secure must be auto, true or false, got {config.session.cookie_secure!r}"
        )
    if not any(config.role_groups.values()):
        raise ConfigError("no LDAP group maps to any role: nobody could log in")


def load_directory_config(current: Settings | None = None) -> AuthConfig | None:
    """The directory part of the login configuration from the environment (``B2CAL_LDAP_*``,
    ``B2CAL_ROLE_<ROLE>_GROUPS``), for the CLI's roles; None when no LDAP server is configured.

    The session secret is the webserver's, not needed here; everything else is checked as for the login.
    """
    current = _settings(current)
    if not current.ldap_url:
        return None
    config = AuthConfig(
        ldap=_section({}, "ldap", LdapSettings, current, _LDAP_FIELDS),
        secret_key="x" * MIN_SECRET_KEY_LENGTH,  # unused: the CLI signs no session
        role_groups=_role_groups({}, current),
    )
    check_auth_config(config)
    return config
