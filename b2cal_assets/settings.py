"""Every ``B2CAL_*`` environment variable of the deployment, read and checked in one place.

``settings()`` reads the environment afresh at each call (tests and the demo change it), so nothing
chooses its configuration at import time. An empty variable counts as unset. A bad value is one
``SettingsError`` naming the variable and what it must be, never a traceback from deep inside.
The login's variables (``B2CAL_LDAP_*``, ``B2CAL_ROLE_*``, ``B2CAL_SECRET_KEY``, ...) are here too, as
text: ``web/config.py`` layers them over the login's config file and checks both alike, so a bad value
is named the same way wherever it came from. Paths under ``B2CAL_HOME`` come from ``home.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "env_name", "settings"]

ENV_PREFIX = "B2CAL_"
DEFAULT_CDST_PRODUCER = "b2cal_assets.demo.reconstruction:produce_cdst"
DEFAULT_UPLOAD_MAX_BYTES = 512 * 1024 * 1024

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]


class SettingsError(ValueError):
    """A ``B2CAL_*`` variable has a value b2cal cannot use; the message names it."""


#: the variables whose empty value means something (no groups give the role, nobody is a manager),
#: so they are read even when empty; every other empty variable counts as unset
SET_EVEN_IF_EMPTY = (
    "role_admin_groups",
    "role_manager_groups",
    "role_expert_groups",
    "role_viewer_groups",
    "managers",
)


class _SetEvenIfEmpty(PydanticBaseSettingsSource):
    """``SET_EVEN_IF_EMPTY`` from the environment, empty or not (ahead of the usual source)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = env_name(field_name)
        return os.environ.get(name), name, False

    def __call__(self) -> dict[str, Any]:
        return {f: os.environ[env_name(f)] for f in SET_EVEN_IF_EMPTY if env_name(f) in os.environ}


class Settings(BaseSettings):
    """The deployment's settings; each field is the variable ``B2CAL_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True, validate_default=True
    )

    home: Path = Field(default=Path(".b2cal"), description="Where an installation keeps its files.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty: SQLite in the home.")
    calibrations_dir: str = Field(default="", description="The calibration scripts; empty: the demo set.")
    calibrations_manifest: str = Field(
        default="", description="A manifest of `b2cal calibrations export`: the calibrations load from it."
    )
    cdst_producer: str = Field(
        default=DEFAULT_CDST_PRODUCER, description="module:function reconstructing raw skims into a cDST."
    )
    cdst_files_per_job: Count = Field(
        default=0, description="Raw files per cDST batch job (0: one job per run and data tag)."
    )
    migrations_dir: Path | None = Field(
        default=None, description="The Alembic scripts (default: migrations/)."
    )
    upload_max_bytes: Annotated[int, Field(ge=1)] = Field(
        default=DEFAULT_UPLOAD_MAX_BYTES, description="Size limit of an uploaded payload archive."
    )
    user: str = Field(default="", description="Who acts in CLI commands (default: the login name).")
    local_max_processes: Annotated[int, Field(ge=1)] = Field(
        default=4, description="Processes of the local backend."
    )
    batch_retry_delay_s: Seconds | None = Field(
        default=None, description="Delay before a failed job is retried."
    )
    batch_poll_interval_s: Seconds | None = Field(default=None, description="Seconds between status queries.")
    batch_max_failed_polls: Count | None = Field(
        default=None, description="Status queries that may fail in a row before the jobs are given up."
    )
    ssh_control_dir: Path | None = Field(
        default=None,
        description="Where the SSH master connections to remote sites keep their sockets (default /tmp/b2cal-ssh-<uid>).",
    )
    ssh_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=120.0, description="Longest wait for one command on a remote site's submit host."
    )
    slurm_conf: str = Field(default="", description="SLURM_CONF for the Slurm commands (empty: SLURM_CONF).")
    slurm_jobcomp_file: str = Field(default="", description="Slurm's jobcomp/filetxt file, for purged jobs.")
    job_container_mounts: str = Field(
        default="",
        description="Volumes of the framework's job containers, SRC:DST[:MODE] comma separated "
        "(docker/compose.container-jobs.yaml; empty: the work directory bound at its own path).",
    )
    job_container_network: str = Field(
        default="", description="The network of the framework's job containers (empty: the engine's default)."
    )
    db_retry_s: Seconds = Field(
        default=300.0,  # a restart takes seconds, a failover a minute or two; a run waits that long
        description="How long a run retries its database work while the server is unreachable.",
    )
    backup_cron: str = Field(default="0 3 * * *", description="When the database backup runs.")
    jira_url: str = Field(default="", description="Jira base URL; empty: messages stay in the database.")
    jira_user: str = Field(default="", description="The Jira account.")
    jira_token: str = Field(default="", description="The Jira account's password or API token.")
    jira_project: str = Field(default="", description="The Jira project key.")
    jira_verify: str = Field(default="true", description="true, false, or a CA bundle file.")
    rucio_host: str = Field(default="", description="Rucio server URL; empty: the built-in catalog only.")
    rucio_auth_host: str = Field(default="", description="Rucio authentication server (default: the host).")
    rucio_account: str = Field(default="", description="The Rucio account the loop reads as.")
    rucio_auth_type: str = Field(default="userpass", description="userpass, x509, x509_proxy, oidc, ...")
    rucio_username: str = Field(default="", description="userpass login.")
    rucio_password: str = Field(default="", description="userpass password.")
    rucio_vo: str = Field(default="", description="Rucio VO (multi-VO servers only).")
    rucio_ca_cert: str = Field(default="", description="CA bundle for the server's certificate.")
    rucio_rses: str = Field(default="", description="site=RSE pairs, comma separated: the RSE each site reads.")
    rucio_scope: str = Field(default="belle", description="The scope of the skim datasets.")
    rucio_dataset_glob: str = Field(
        default="{data_tag}.e*", description="Dataset names to list per data tag ({data_tag} is filled in)."
    )
    rucio_name_regex: str = Field(
        default=r"^(?P<data_tag>[A-Za-z0-9_\-]+)\.e(?P<exp>\d+)\.r(?P<run>\d+)$",
        description="Named groups exp, run, data_tag read from a dataset name its metadata does not cover.",
    )
    rucio_meta_keys: str = Field(
        default="", description="what=key pairs overriding the DID metadata keys (exp, run, data_tag, ...)."
    )
    rucio_full_scan_interval_s: Seconds = Field(
        default=600.0, description="Seconds between full scans (the ones that see a replica gone)."
    )
    rucio_backoff_base_s: Seconds = Field(default=30.0, description="Wait after a failed sync, doubling.")
    rucio_backoff_max_s: Seconds = Field(default=1800.0, description="Longest wait between failed syncs.")
    trusted_proxies: str = Field(
        default="", description="Addresses whose X-Forwarded-* headers are believed."
    )
    condb_url: str = Field(
        default="", description="Conditions database REST root (https://host/b2s/rest/); empty: no upload."
    )
    condb_user: str = Field(default="", description="Conditions database account (HTTP basic auth).")
    condb_token: str = Field(
        default="", description="Its password, or a bearer token when no user is set."
    )
    launch_at_signoff: bool = Field(
        default=False,
        description="An accepted sign-off in a Dagster run queues its ready dependents' runs at once "
        "(experimental: a race with the sensor's tick can start one run key twice); "
        "false: the loop sensor's next tick does.",
    )
    condb_upload_at: Literal["processing", "signoff"] = Field(
        default="processing",
        description="When signed-off payloads go up: at the end of the processing or at each sign-off.",
    )
    condb_tag_pattern: Annotated[str, Field(pattern=r"\{processing\}")] = Field(
        default="staging_{processing}", description="The staging global tag's name; {processing} is replaced."
    )
    condb_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=30.0, description="Seconds per conditions-database request."
    )
    condb_attempts: Annotated[int, Field(ge=1)] = Field(
        default=4, description="Tries per request while the conditions database is unreachable."
    )
    condb_backoff_s: Seconds = Field(
        default=2.0, description="First wait between those tries (doubles each time)."
    )
    services_dir: Path = Field(
        default=Path("/tmp/b2cal-services"), description="Where .ci/services keeps its test services."
    )
    managers: str | None = Field(
        default=None,
        description="Without a directory, the CLI's managers (comma separated); unset: whoever runs it.",
    )
    # The login (web/config.py layers each over its config file and checks it there).
    ldap_url: str = Field(default="", description="ldap:// or ldaps:// URL of the directory.")
    ldap_start_tls: str = Field(default="", description="StartTLS on an ldap:// URL (true/false).")
    ldap_tls_verify: str = Field(default="", description="Check the server's certificate (true/false).")
    ldap_ca_file: str = Field(default="", description="CA bundle for the directory's certificate.")
    ldap_user_dn_template: str = Field(default="", description="A user's DN, with {username}.")
    ldap_user_search_base: str = Field(default="", description="Where to search a user (search-then-bind).")
    ldap_user_search_filter: str = Field(default="", description="The search filter, with {username}.")
    ldap_bind_dn: str = Field(default="", description="The service account that searches.")
    ldap_bind_password: str = Field(default="", description="Its password (never in the config file).")
    ldap_group_base: str = Field(default="", description="Where the role groups live.")
    ldap_group_filter: str = Field(default="", description="A user's groups, with {user_dn} or {username}.")
    role_admin_groups: str | None = Field(default=None, description="LDAP groups giving admin (a,b).")
    role_manager_groups: str | None = Field(default=None, description="LDAP groups giving manager.")
    role_expert_groups: str | None = Field(default=None, description="LDAP groups giving expert.")
    role_viewer_groups: str | None = Field(default=None, description="LDAP groups giving viewer.")
    session_max_age: str = Field(default="", description="Seconds a login lasts.")
    cookie_secure: str = Field(default="", description="auto, true or false: the Secure cookie flag.")
    secret_key: str = Field(default="", description="Signs the sessions (never in the config file).")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _SetEvenIfEmpty(settings_cls), env_settings, dotenv_settings, file_secret_settings)


def env_name(field: str) -> str:
    """The environment variable of a settings field: ``home`` -> ``B2CAL_HOME``."""
    return f"{ENV_PREFIX}{field.upper()}"


def settings() -> Settings:
    """The settings from the environment now; ``SettingsError`` names each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = env_name(str(error["loc"][0])) if error["loc"] else ENV_PREFIX + "*"
            problems.append(f"{name}={error.get('input')!r}: {error['msg'].lower()}")
        raise SettingsError("; ".join(problems)) from None
