"""The conditions database as a resource, and the sensor that uploads the staging tags that are due.

The tick (end of a processing) or the sign-off (``B2CAL_CONDB_UPLOAD_AT=signoff``) only marks an
upload due; ``condb_upload_sensor`` does it, so a conditions database that is down or slow never
fails a run or a loop tick: the upload waits (doubling waits, up to an hour) and resumes.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from b2cal_assets.conditions.condb_client import ConditionsDbClient, build_client
from b2cal_assets.defs.env_vars import env_var
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.settings import env_name, settings


class ConditionsDbResource(dg.ConfigurableResource):
    """A conditions database (REST API v2); an empty ``url`` means none: payloads stay in the local staging tag."""

    url: str = Field(default="", description="REST root, e.g. https://conditions.example.org/b2s/rest/.")
    user: str = Field(default="", description="Account for HTTP basic auth (empty: bearer token).")
    token: str = Field(default="", description="Its password or token (set through EnvVar B2CAL_CONDB_TOKEN).")
    timeout_s: float = Field(default=30.0, description="Seconds per request.")
    attempts: int = Field(default=4, description="Tries per request while the server is unreachable.")
    backoff_s: float = Field(default=2.0, description="First wait between those tries (doubles).")

    def get_client(self) -> ConditionsDbClient | None:
        return build_client(
            self.url,
            user=self.user,
            token=self.token,
            timeout_s=self.timeout_s,
            attempts=self.attempts,
            backoff_s=self.backoff_s,
        )


def condb_resource_from_env() -> ConditionsDbResource:
    """Configured from ``B2CAL_CONDB_URL`` and friends (each an ``EnvVar``), else unconfigured."""
    current = settings()
    if not current.condb_url:
        return ConditionsDbResource()
    return ConditionsDbResource(
        url=dg.EnvVar(env_name("condb_url")),
        user=env_var("condb_user") or "",
        token=env_var("condb_token") or "",
        timeout_s=current.condb_timeout_s,
        attempts=current.condb_attempts,
        backoff_s=current.condb_backoff_s,
    )


@dg.sensor(
    name="condb_upload_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Uploads the signed-off payloads of each due processing into its staging global tag of the "
    "conditions database (resumable, never twice). The server down: nothing fails, the upload waits.",
)
def condb_upload_sensor(
    context: dg.SensorEvaluationContext, loop: CalibrationLoopResource, condb: ConditionsDbResource
):
    client = condb.get_client()
    if client is None:
        return dg.SensorResult(skip_reason=dg.SkipReason("no conditions database configured (B2CAL_CONDB_URL)"))
    with client:
        results = loop.service().upload_due_condb(client)
    for result in results:
        line = f"{result.processing}: {result.describe()}"
        if result.ok:
            context.log.info(line)
        else:
            context.log.warning(line)
    text = f"{len(results)} staging tag upload(s) tried" if results else "no upload due"
    return dg.SensorResult(skip_reason=dg.SkipReason(text))
