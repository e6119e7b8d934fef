"""When a run dies (crash, cancel, lost worker), the attempt it started must not stay 'running' forever."""

import dagster as dg

from b2cal_assets.defs.resources import CalibrationLoopResource


@dg.run_failure_sensor(
    name="run_failure_sensor",
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the calibration attempt of a failed or cancelled run as failed, so managers can restart it.",
)
def run_failure_sensor(context: dg.RunFailureSensorContext, loop: CalibrationLoopResource):
    message = context.failure_event.message or "the Dagster run failed"
    ended = loop.service().fail_run(context.dagster_run.run_id, message)
    for processing, calibration in ended:
        context.log.info(f"{calibration} in {processing}: attempt marked failed ({message})")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    name="run_canceled_sensor",
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the calibration attempt of a cancelled run as failed (its batch jobs were cancelled).",
)
def run_canceled_sensor(context: dg.RunStatusSensorContext, loop: CalibrationLoopResource):
    loop.service().fail_run(context.dagster_run.run_id, "the run was cancelled")
