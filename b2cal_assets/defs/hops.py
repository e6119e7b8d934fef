"""The fast hop: a sign-off launches its ready dependents at once, not at the next sensor tick.

The run that signs off (automatically, or an expert materialising the sign-off in Dagster), right after
the sign-off commits, ticks the loop for its own
processing (``LoopService.tick(only=...)``: the same rules as the loop sensor's tick, so windows, holds
and deadlines decide exactly as there) and requests the runs of that tick the way the loop sensor's
``RunRequest`` would be made into runs by the daemon: the same request (``sensors.run_request_for``),
the same tags (run key, ``dagster/sensor_name`` of the loop sensor, partition), the same job and code
location. So the loop sensor's reconciliation sees the run as its own and the daemon never creates a
second one for that run key; a dependent whose submission window is open waits for the sensor as before.

The runs go to the instance's queued run coordinator (``submit_run``), so the queue's limits apply as
to every sensor run. Without one (an instance that launches at once), or in a run that has no code
location behind it (``execute_in_process``), nothing is requested here and the sensor does it all.
Anything going wrong here is only logged: the sensor's next tick derives the same requests.
``B2CAL_LAUNCH_AT_SIGNOFF=false`` turns this off (every dependent waits for the sensor's tick).
"""

from __future__ import annotations

import dagster as dg
from dagster._core.execution.api import create_execution_plan
from dagster._core.origin import JobPythonOrigin
from dagster._core.remote_origin import RemoteJobOrigin
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator
from dagster._core.snap import snapshot_from_execution_plan
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from b2cal_assets.db.transactions import retry_on_deadlock
from b2cal_assets.defs.sensors import LOOP_SENSOR, DagsterRuns, handled_by_own_run, run_request_for
from b2cal_assets.loop.records import Launch
from b2cal_assets.loop.service import LoopService
from b2cal_assets.settings import settings


def launch_ready_dependents(
    context: dg.AssetExecutionContext, service: LoopService, processing: str
) -> list[str]:
    """Tick ``processing`` now and submit the runs the loop sensor would request; returns their run ids."""
    if not settings().launch_at_signoff:
        return []  # B2CAL_LAUNCH_AT_SIGNOFF=false: the loop sensor launches the dependents
    instance = context.instance
    current = context.run
    if current.remote_job_origin is None or current.job_code_origin is None:
        context.log.debug("no code location behind this run: the loop sensor launches the dependents")
        return []
    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
        context.log.debug("no run queue on this instance: the loop sensor launches the dependents")
        return []
    try:
        report = retry_on_deadlock(service.tick)(runs=DagsterRuns(instance), only=processing)
        run_ids = []
        for launch in report.launches:
            if handled_by_own_run(instance, launch):
                continue
            run_id = _submit(context, launch)
            if run_id is not None:
                context.log.info(f"{processing}/{launch.step}: run {run_id} requested at sign-off")
                run_ids.append(run_id)
    except Exception as exc:  # the sensor's next tick derives the same requests under the same keys
        context.log.warning(
            f"{processing}: dependents not launched at sign-off ({exc}); the loop sensor will"
        )
        return []
    return run_ids


def _submit(context: dg.AssetExecutionContext, launch: Launch) -> str | None:
    """Create and queue the run of ``launch`` unless one exists for its run key."""
    instance = context.instance
    if DagsterRuns(instance).by_key(launch.run_key) is not None:
        return None  # the sensor (or an earlier try) made it: Dagster starts a run key once
    current = context.run
    assert current.remote_job_origin is not None and current.job_code_origin is not None  # the caller's check
    run = create_loop_run(
        instance,
        loop_job(context.repository_def),
        run_request_for(launch),
        current.remote_job_origin,
        current.job_code_origin,
    )
    instance.submit_run(run.run_id, workspace=None)  # the queue needs no workspace
    return run.run_id


def loop_job(repository: dg.RepositoryDefinition) -> dg.JobDefinition:
    """The job the loop sensor's runs belong to (its target: every asset)."""
    return repository.get_job(repository.get_sensor_def(LOOP_SENSOR).job.name)


def create_loop_run(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    request: dg.RunRequest,
    remote_origin: RemoteJobOrigin,
    code_origin: JobPythonOrigin,
) -> DagsterRun:
    """The run the daemon makes of the loop sensor's ``request`` (``NOT_STARTED``): same job, tags and
    selection, in the code location of ``remote_origin``, so the sensor's run-key lookups find it."""
    run_key = request.run_key
    assert run_key, "a loop run has a run key"
    request = request.with_resolved_tags_and_config(job, [], instance)
    assets = frozenset(request.asset_selection or [])
    checks = frozenset(request.asset_check_keys) if request.asset_check_keys is not None else None
    subset = job.get_subset(asset_selection=assets, asset_check_selection=checks)
    tags = {**job.run_tags, **request.tags, RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: LOOP_SENSOR}
    plan = create_execution_plan(
        job=subset, run_config=request.run_config, instance_ref=instance.get_ref(), tags=tags
    )
    return instance.create_run(
        job_name=job.name,
        run_id=None,
        run_config=request.run_config,
        status=dg.DagsterRunStatus.NOT_STARTED,
        tags=tags,
        root_run_id=None,
        parent_run_id=None,
        step_keys_to_execute=None,
        execution_plan_snapshot=snapshot_from_execution_plan(plan, subset.get_job_snapshot_id()),
        job_snapshot=subset.get_job_snapshot(),
        parent_job_snapshot=subset.get_parent_job_snapshot(),
        asset_selection=assets,
        asset_check_selection=checks,
        resolved_op_selection=None,
        op_selection=None,
        remote_job_origin=remote_origin._replace(job_name=job.name),
        job_code_origin=code_origin._replace(job_name=job.name),
        asset_graph=job.asset_layer.asset_graph,
    )
