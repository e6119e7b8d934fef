"""Jira as a resource, and the one sensor that sends the stored ticket messages to it.

The loop only stores messages (``LoopService.notify``); ``ticket_sensor`` is the only sender, so a Jira
that is down or slow never fails a run or a loop tick: the messages wait and go out at a later tick.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from b2cal_assets.defs.env_vars import env_var
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.settings import env_name, settings
from b2cal_assets.tickets.jira_client import JiraTicketClient
from b2cal_assets.tickets.outbox import FlushReport, TicketOutbox

TOKEN_ENV = env_name("jira_token")


class JiraResource(dg.ConfigurableResource):
    """A Jira server (REST API v2); an empty ``url`` means no Jira: messages stay in the calibration DB."""

    url: str = Field(default="", description="Jira base URL, e.g. https://jira.example.org; empty: no Jira.")
    user: str = Field(default="", description="The account that opens tickets and comments.")
    token: str = Field(
        default="", description="Its password or API token (set through EnvVar B2CAL_JIRA_TOKEN)."
    )
    project: str = Field(default="", description="Project key the tickets go to, e.g. CAL.")
    verify: bool = Field(default=True, description="Check the server's TLS certificate.")
    ca_bundle: str = Field(
        default="", description="CA bundle file for the certificate check (empty: system CAs)."
    )
    issue_type: str = Field(default="Task", description="Issue type of the tickets.")
    timeout_s: float = Field(default=20.0, description="Seconds per request before Jira counts as down.")

    def get_client(self) -> JiraTicketClient | None:
        if not self.url:
            return None
        verify: bool | str = self.ca_bundle if (self.verify and self.ca_bundle) else self.verify
        return JiraTicketClient(
            self.url,
            self.user,
            self.token,
            self.project,
            verify,
            issue_type=self.issue_type,
            timeout=self.timeout_s,
        )


def jira_resource_from_env() -> JiraResource:
    """Configured from B2CAL_JIRA_URL / _USER / _PROJECT (token from B2CAL_JIRA_TOKEN), else unconfigured.

    Each field set in the environment is an ``EnvVar``, read where the resource runs.
    """
    current = settings()
    if not current.jira_url:
        return JiraResource()
    verify = current.jira_verify
    return JiraResource(
        url=dg.EnvVar(env_name("jira_url")),
        user=env_var("jira_user") or "",
        token=dg.EnvVar(TOKEN_ENV),
        project=env_var("jira_project") or "",
        verify=verify.lower() not in ("0", "false", "no"),
        ca_bundle=verify if verify.lower() not in ("0", "1", "true", "false", "yes", "no") else "",
    )


def describe(report: FlushReport, configured: bool) -> str:
    if not configured:
        return f"no Jira configured: {report.pending} ticket message(s) kept in the calibration DB (b2cal tickets)"
    text = f"sent {report.sent} ticket message(s), {report.pending} waiting"
    if report.jira_down:
        text += "; Jira is unavailable, the rest is sent at a later tick"
    if report.errors:
        text += "; errors: " + " | ".join(report.errors[:5])
    return text


@dg.sensor(
    name="ticket_sensor",
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends the stored ticket messages (window open, submitted, failed, finished, sign-off, "
    "manager actions, uploads) to Jira. Jira down: nothing fails, the messages wait.",
)
def ticket_sensor(context: dg.SensorEvaluationContext, loop: CalibrationLoopResource, jira: JiraResource):
    service = loop.service()
    try:
        client = jira.get_client()
    except Exception as exc:  # a bad configuration must not stop the sensor: it says what is wrong
        return dg.SensorResult(skip_reason=dg.SkipReason(f"Jira client could not be built: {exc}"))
    report = TicketOutbox(service.session, client).flush()
    text = describe(report, client is not None)
    if report.jira_down or report.errors:
        context.log.warning(text)
    else:
        context.log.info(text)
    return dg.SensorResult(skip_reason=dg.SkipReason(text))
