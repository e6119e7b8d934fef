"""Database backups on a schedule (daily by default; ``B2CAL_BACKUP_CRON`` changes it)."""

import dagster as dg
from pydantic import Field

from b2cal_assets import home
from b2cal_assets.db.backup import backup_database
from b2cal_assets.db.engine import database_url
from b2cal_assets.settings import settings


class BackupConfig(dg.Config):
    retention: int = Field(default=14, description="How many backups to keep; older ones are deleted.")
    directory: str = Field(default="", description="Where backups go; empty means $B2CAL_HOME/backups.")
    include_payloads: bool = Field(default=True, description="Put the payload files in the backup too.")


@dg.op(description="Back up the calibration database with the engine's own tool, compressed and timestamped.")
def backup_calibration_database(context: dg.OpExecutionContext, config: BackupConfig) -> str:
    result = backup_database(
        database_url(),
        config.directory or str(home.backups_dir()),
        retention=config.retention,
        payload_dir=str(home.payloads_root()) if config.include_payloads else None,
    )
    context.log.info(f"backup written to {result.path}")
    context.add_output_metadata({"path": dg.MetadataValue.path(str(result.path))})
    return str(result.path)


@dg.job(description="Back up the calibration database (and the payload files).")
def database_backup_job():
    backup_calibration_database()


database_backup_schedule = dg.ScheduleDefinition(
    name="database_backup_schedule",
    job=database_backup_job,
    cron_schedule=settings().backup_cron,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Backs up the calibration database so that data lost in a migration can be restored.",
)
