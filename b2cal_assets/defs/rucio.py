"""A site's Rucio as a resource, and the sensor that feeds the catalog from it.

The Rucio-speaking code is ``catalog_sources/rucio.py`` and the registration ``loop/catalog_sync.py``;
this is the thin Dagster side. With no ``host`` the resource is unconfigured and the built-in catalog
(files registered by ``b2cal`` or the demo) is all there is. ``data_arrival_sensor`` then reports what
was registered, whichever way it came.
"""

from __future__ import annotations

from functools import partial

import dagster as dg
from pydantic import Field

from b2cal_assets.catalog_sources.rucio import DEFAULT_META_KEYS, RucioCatalog, RucioNaming, connect
from b2cal_assets.defs.env_vars import env_var
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.loop.catalog_sync import SyncPolicy, SyncReport
from b2cal_assets.loop.service import LoopService
from b2cal_assets.settings import SettingsError, env_name, settings

RUCIO_SENSOR = "rucio_catalog_sensor"


class RucioCatalogResource(dg.ConfigurableResource):
    """A Rucio server; per site, the RSE its jobs read from. Empty ``host``: no Rucio."""

    host: str = Field(
        default="", description="Rucio server URL, e.g. https://rucio.example.org; empty: none."
    )
    auth_host: str = Field(default="", description="Authentication server (empty: the host).")
    account: str = Field(default="", description="The Rucio account the loop reads as.")
    auth_type: str = Field(default="userpass", description="userpass, x509, x509_proxy, oidc, ...")
    username: str = Field(default="", description="userpass login.")
    password: str = Field(default="", description="userpass password (EnvVar B2CAL_RUCIO_PASSWORD).")
    vo: str = Field(default="", description="VO of a multi-VO server.")
    ca_cert: str = Field(default="", description="CA bundle for the server's certificate.")
    timeout_s: float = Field(default=30.0, description="Seconds per request before Rucio counts as down.")
    site_rses: dict[str, str] = Field(default_factory=dict, description="site name -> RSE its jobs read.")
    scope: str = Field(default="belle", description="Scope of the skim datasets.")
    dataset_glob: str = Field(default=RucioNaming.dataset_glob, description="Names to list per data tag.")
    name_regex: str = Field(default=RucioNaming.name_regex, description="exp/run/data_tag from a name.")
    meta_keys: dict[str, str] = Field(default_factory=dict, description="DID metadata key per run fact.")
    scheme: str = Field(default="root", description="Protocol of the PFNs jobs open.")
    full_scan_interval_s: float = Field(default=600.0, description="Seconds between full scans.")
    attempts: int = Field(default=3, description="Tries per sync before Rucio counts as unreachable.")
    retry_wait_s: float = Field(default=1.0, description="First wait between those tries (doubles).")
    backoff_base_s: float = Field(default=30.0, description="Wait after a failed sync (doubles per failure).")
    backoff_max_s: float = Field(default=1800.0, description="Longest wait between failed syncs.")

    def configured(self) -> bool:
        return bool(self.host and self.site_rses)

    def naming(self) -> RucioNaming:
        return RucioNaming(
            scope=self.scope,
            dataset_glob=self.dataset_glob,
            name_regex=self.name_regex,
            meta_keys={**DEFAULT_META_KEYS, **self.meta_keys},
            scheme=self.scheme,
        )

    def policy(self) -> SyncPolicy:
        return SyncPolicy(
            full_scan_interval_s=self.full_scan_interval_s,
            attempts=self.attempts,
            retry_wait_s=self.retry_wait_s,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
        )

    def catalog(self, rse: str) -> RucioCatalog:
        """A client logged in to the server, looking at ``rse`` (``RucioUnreachable`` if it cannot)."""
        client = connect(
            self.host,
            auth_host=self.auth_host,
            account=self.account,
            username=self.username,
            password=self.password,
            auth_type=self.auth_type,
            vo=self.vo,
            ca_cert=self.ca_cert,
            timeout_s=self.timeout_s,
        )
        return RucioCatalog(client, rse, self.naming())

    def sync_all(self, service: LoopService) -> list[SyncReport]:
        """One sync per configured site; a site whose Rucio does not answer never stops the others."""
        return [
            service.sync_catalog(
                site, partial(self.catalog, rse), f"{self.host} {self.scope} @ {rse}", self.policy()
            )
            for site, rse in sorted(self.site_rses.items())
        ]


def _pairs(field: str, text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SettingsError(f"{env_name(field)}={text!r}: each item must be name=value, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def rucio_resource_from_env() -> RucioCatalogResource:
    """Configured from the ``B2CAL_RUCIO_*`` variables (host and password as ``EnvVar``), else unconfigured."""
    current = settings()
    if not current.rucio_host:
        return RucioCatalogResource()
    meta_keys = _pairs("rucio_meta_keys", current.rucio_meta_keys)
    unknown = sorted(set(meta_keys) - set(DEFAULT_META_KEYS))
    if unknown:
        raise SettingsError(
            f"{env_name('rucio_meta_keys')}: unknown fact {unknown[0]!r} (known: {', '.join(DEFAULT_META_KEYS)})"
        )
    return RucioCatalogResource(
        host=dg.EnvVar(env_name("rucio_host")),
        auth_host=current.rucio_auth_host,
        account=current.rucio_account,
        auth_type=current.rucio_auth_type,
        username=current.rucio_username,
        password=env_var("rucio_password") or "",
        vo=current.rucio_vo,
        ca_cert=current.rucio_ca_cert,
        site_rses=_pairs("rucio_rses", current.rucio_rses),
        scope=current.rucio_scope,
        dataset_glob=current.rucio_dataset_glob,
        name_regex=current.rucio_name_regex,
        meta_keys=meta_keys,
        full_scan_interval_s=current.rucio_full_scan_interval_s,
        backoff_base_s=current.rucio_backoff_base_s,
        backoff_max_s=current.rucio_backoff_max_s,
    )


@dg.sensor(
    name=RUCIO_SENSOR,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers in the data catalog the skim files each site's Rucio announces at its RSE, and "
    "flags files that are gone or whose checksum changed; data_arrival_sensor reports them.",
)
def rucio_catalog_sensor(
    context: dg.SensorEvaluationContext, loop: CalibrationLoopResource, rucio: RucioCatalogResource
) -> dg.SkipReason:
    if not rucio.configured():
        return dg.SkipReason(
            "no Rucio configured (B2CAL_RUCIO_HOST, B2CAL_RUCIO_RSES): the built-in catalog is used"
        )
    reports = rucio.sync_all(loop.service())
    for report in reports:
        (context.log.info if report.ok else context.log.warning)(report.describe())
    return dg.SkipReason(" | ".join(r.describe() for r in reports))
