"""Everything Dagster serves, built from the calibration scripts found at load time."""

from __future__ import annotations

import logging

import dagster as dg

from b2cal_assets.defs.assets import build_assets
from b2cal_assets.defs.batch_resources import batch_backend_resources, local_backend_resource
from b2cal_assets.defs.checks import build_checks
from b2cal_assets.defs.conditions import ConditionsDbResource, condb_resource_from_env, condb_upload_sensor
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.defs.rucio import RucioCatalogResource, rucio_catalog_sensor, rucio_resource_from_env
from b2cal_assets.defs.schedules import database_backup_job, database_backup_schedule
from b2cal_assets.defs.sensors import (
    calibration_loop_sensor,
    data_arrival_sensor,
    decisions_sensor,
    staging_sensor,
)
from b2cal_assets.defs.tickets import JiraResource, jira_resource_from_env, ticket_sensor
from b2cal_assets.loop.factory import scripts as loaded_scripts
from b2cal_assets.loop.steps import build_steps

log = logging.getLogger(__name__)


def backend_resources() -> dict[str, dg.ConfigurableResource]:
    """The local pool and the lab batch systems, with the settings' retry and poll overrides."""
    return {"local_backend": local_backend_resource(), **batch_backend_resources()}


def build_definitions(
    calibrations_dir: str = "",
    loop: CalibrationLoopResource | None = None,
    jira: JiraResource | None = None,
    rucio: RucioCatalogResource | None = None,
    condb: ConditionsDbResource | None = None,
) -> dg.Definitions:
    scripts = loaded_scripts(calibrations_dir or None)
    steps = build_steps(scripts.calibrations)
    refused: dict[str, str] = {}
    assets = build_assets(steps, scripts, refused)
    for name, message in refused.items():
        log.error("calibration %r left out of the code location: %s", name, message)
    return dg.Definitions(
        assets=assets,
        asset_checks=build_checks({n: s for n, s in scripts.calibrations.items() if n not in refused}),
        metadata={
            "script_errors": dg.MetadataValue.json(
                [e.to_json() for e in scripts.errors]
                + [{**w.to_json(), "warning": True} for w in scripts.warnings]
                + [{"calibration": n, "field": "dagster", "message": m} for n, m in refused.items()]
            )
        },
        sensors=[
            rucio_catalog_sensor,  # a site's Rucio feeds the catalog (when one is configured)
            data_arrival_sensor,
            calibration_loop_sensor,  # also reconciles with Dagster's runs (failed, lost, dead runs)
            staging_sensor,
            condb_upload_sensor,  # the staging tags into the conditions database
            ticket_sensor,
            decisions_sensor,  # decisions made on the calibration pages or the CLI, shown in Dagster
        ],
        schedules=[database_backup_schedule],
        jobs=[database_backup_job],
        executor=dg.in_process_executor,  # one process per run: a step subprocess costs seconds per hop
        resources={
            "loop": loop or CalibrationLoopResource(calibrations_dir=calibrations_dir),
            "jira": jira or jira_resource_from_env(),
            "rucio": rucio or rucio_resource_from_env(),
            "condb": condb or condb_resource_from_env(),
            **backend_resources(),
        },
    )
