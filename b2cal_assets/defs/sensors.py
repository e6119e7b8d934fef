"""Sensors: data arrival from the catalog, the loop (windows, deadlines, reconciliation with Dagster's
runs), and the staging tag of a finished processing."""

import json
from collections import defaultdict
from typing import Any

import dagster as dg

from b2cal_assets.db.transactions import retry_on_deadlock
from b2cal_assets.defs.decision_events import decision_events
from b2cal_assets.defs.keys import (
    CDST_KEY,
    LAUNCHED_BY_TAG,
    REASON_TAG,
    REQUESTED_BY_TAG,
    SIGNOFF_CHECK,
    SUBMITTED_BY_TAG,
    VALIDATION_CHECK,
    VALIDITY_CHECK,
    payloads_key,
    signoff_key,
    skim_key,
)
from b2cal_assets.defs.partitions import PROCESSING_PARTITIONS_NAME
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.loop.decisions import decisions_after
from b2cal_assets.loop.reconcile import RESUME_TAG, RunInfo
from b2cal_assets.loop.service import AUTO_USER, Launch
from b2cal_assets.loop.steps import CDST_STEP

LOOP_SENSOR = "calibration_loop_sensor"
DECISIONS_SENSOR = "decisions_sensor"
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"


def _new_partitions(context, names: list[str]) -> list[dg.AddDynamicPartitionsRequest]:
    known = set(context.instance.get_dynamic_partitions(PROCESSING_PARTITIONS_NAME))
    new = [n for n in names if n not in known]
    return [dg.AddDynamicPartitionsRequest(PROCESSING_PARTITIONS_NAME, new)] if new else []


def _stray_partitions(context, processings: list[str]) -> list[dg.DeleteDynamicPartitionsRequest]:
    """Partitions no processing stands behind (added by hand): removed, since nothing could run in them.

    A processing is registered in the calibration database before the loop adds its partition, and is
    never deleted there, so a partition it does not know is never one the loop made.
    """
    known = set(processings)
    stray = sorted(
        p for p in context.instance.get_dynamic_partitions(PROCESSING_PARTITIONS_NAME) if p not in known
    )
    for name in stray:
        context.log.warning(
            f"partition {name!r} is not a processing (register one with b2cal processing create); removed"
        )
    return [dg.DeleteDynamicPartitionsRequest(PROCESSING_PARTITIONS_NAME, stray)] if stray else []


@dg.sensor(
    name="data_arrival_sensor",
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports calibration skims registered in the data catalog as materialisations of skim/<tag>, "
    "per processing whose IoV holds the run.",
)
def data_arrival_sensor(context: dg.SensorEvaluationContext, loop: CalibrationLoopResource):
    service = loop.service()
    iovs = service.processing_iovs(state=None)
    seen = dict((context.cursor and _parse_cursor(context.cursor)) or {})
    last_id = seen.get("last_id", 0)
    reported = set(seen.get("processings", []))
    # per (processing, tag): runs, files and events newly seen
    batches: dict[tuple[str, str], _Arrivals] = defaultdict(_Arrivals)
    # A processing registered after its data arrived is told once of everything up to the cursor,
    # counted in the database; what came after the cursor arrives below like for every processing.
    for processing in sorted(set(iovs) - reported):
        for arrived in service.arrived_before(processing, last_id):
            batches[(processing, arrived.data_tag)].add((arrived.exp, arrived.run), arrived.files, arrived.events)
    new_files = service.catalog_after(last_id)
    for f in new_files:
        if f.data_format != "raw":
            continue
        for processing, iov in iovs.items():
            if iov.contains_run(f.exp, f.run):
                batches[(processing, f.data_tag)].add((f.exp, f.run), 1, f.n_events)
    events = [
        dg.AssetMaterialization(
            asset_key=skim_key(tag),
            partition=processing,
            metadata={
                "new_files": arrivals.files,
                "runs": ", ".join(f"{e}/{r}" for e, r in sorted(arrivals.runs)),
                "events": arrivals.events,
            },
        )
        for (processing, tag), arrivals in sorted(batches.items())
    ]
    cursor = {
        "last_id": max([last_id] + [f.id for f in new_files]),
        "processings": sorted(reported | set(iovs)),
    }
    return dg.SensorResult(
        asset_events=events,
        dynamic_partitions_requests=_new_partitions(context, sorted(iovs)),
        cursor=_format_cursor(cursor),
    )


class _Arrivals:
    """What one materialisation of a skim reports: the runs, files and events that arrived."""

    def __init__(self) -> None:
        self.runs: set[tuple[int, int]] = set()
        self.files = 0
        self.events = 0

    def add(self, run: tuple[int, int], files: int, events: int) -> None:
        self.runs.add(run)
        self.files += files
        self.events += events


def _parse_cursor(text: str) -> dict:
    return json.loads(text)


def _format_cursor(value: dict) -> str:
    return json.dumps(value, sort_keys=True)


def check_keys(calibration: str) -> list[dg.AssetCheckKey]:
    """The checks of a calibration's payloads (defs/checks.py): validity, then the validation script."""
    return [dg.AssetCheckKey(payloads_key(calibration), name) for name in (VALIDITY_CHECK, VALIDATION_CHECK)]


def run_request_for(launch: Launch) -> dg.RunRequest:
    tags = {
        LAUNCHED_BY_TAG: AUTO_USER,
        SUBMITTED_BY_TAG: launch.submitted_by,
        REQUESTED_BY_TAG: launch.requested_by,
        REASON_TAG: launch.label,
    }
    if launch.resume_run_id:
        tags[RESUME_TAG] = launch.resume_run_id  # the new run takes over the attempt of the dead one
    if launch.checks_only:
        # the payloads exist: run their checks; blocking checks gate the sign-off in the same run
        selection = [signoff_key(launch.step)] if launch.automatic_signoff else []
        signoff_ops = {
            signoff_key(launch.step).to_python_identifier(): {
                "config": {"decision": "accept", "comment": "automatic sign-off: the payload checks passed"}
            }
        }
        checks = check_keys(launch.step)
        if launch.automatic_signoff:
            checks.append(dg.AssetCheckKey(signoff_key(launch.step), SIGNOFF_CHECK))
        return dg.RunRequest(
            run_key=launch.run_key,
            partition_key=launch.processing,
            asset_selection=selection,
            asset_check_keys=checks,
            run_config={"ops": signoff_ops} if launch.automatic_signoff else {},
            tags=tags,
        )
    if launch.step == CDST_STEP:
        return dg.RunRequest(
            run_key=launch.run_key, partition_key=launch.processing, asset_selection=[CDST_KEY], tags=tags
        )
    selection = [payloads_key(launch.step)]
    ops: dict[str, dict] = {
        payloads_key(launch.step).to_python_identifier(): {
            "config": {"expert_config": launch.expert_config, **launch.job_config}
        }
    }
    if launch.automatic_signoff:
        selection.append(signoff_key(launch.step))
        ops[signoff_key(launch.step).to_python_identifier()] = {
            "config": {"decision": "accept", "comment": "automatic sign-off: the payload checks passed"}
        }
    return dg.RunRequest(
        run_key=launch.run_key,
        partition_key=launch.processing,
        asset_selection=selection,
        run_config={"ops": ops},
        tags=tags,
    )


class DagsterRuns:
    """The loop's view of Dagster's runs (``loop.reconcile.RunLookup``), read from the instance."""

    def __init__(self, instance: dg.DagsterInstance, sensor_name: str = LOOP_SENSOR) -> None:
        self.instance = instance
        self.sensor_name = sensor_name

    @staticmethod
    def _info(record) -> RunInfo:
        run = record.dagster_run
        return RunInfo(run_id=run.run_id, status=run.status.value, started=record.start_time is not None)

    def by_key(self, run_key: str) -> RunInfo | None:
        records = self.instance.get_run_records(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=5)
        ours = [r for r in records if r.dagster_run.tags.get(SENSOR_NAME_TAG) == self.sensor_name]
        return self._info(ours[0]) if ours else None  # newest first

    def by_id(self, run_id: str) -> RunInfo | None:
        record = self.instance.get_run_record_by_id(run_id)
        return self._info(record) if record is not None else None

    def why_ended(self, run_id: str) -> str:
        """The run's failure (or cancel) message, and the error that made Dagster fail it, if any."""
        parts: list[str] = []
        for kind in (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED):
            records = self.instance.get_records_for_run(
                run_id, of_type=kind, limit=1, ascending=False
            ).records
            if records and records[0].event_log_entry.message:
                parts.append(records[0].event_log_entry.message)
        engine = self.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=5, ascending=False
        ).records
        for record in engine:
            event = record.event_log_entry.dagster_event
            data = getattr(event, "engine_event_data", None) if event is not None else None
            if data is not None and data.error is not None:
                parts.append(f"{record.event_log_entry.message} {data.error.message}".strip())
                break
        return " / ".join(dict.fromkeys(p.strip() for p in parts if p.strip()))


@dg.sensor(
    name=LOOP_SENSOR,
    minimum_interval_seconds=2,
    default_status=dg.DefaultSensorStatus.RUNNING,
    target=dg.AssetSelection.all(),
    description="Opens submission windows when a calibration's inputs are ready, submits the defaults once "
    "the window has passed, starts the cDST production, closes finished processings, and reconciles the "
    "calibration database with Dagster's runs: a lost or never-started run is launched again, an attempt "
    "whose run died is resumed from its checkpoint.",
)
def calibration_loop_sensor(context: dg.SensorEvaluationContext, loop: CalibrationLoopResource):
    service = loop.service()
    partitions: list[Any] = [
        *_new_partitions(context, service.open_processing_names()),
        *_stray_partitions(context, service.all_processing_names()),
    ]
    # a tick is derived from what is committed, so after a deadlock (MariaDB, PostgreSQL) it runs again whole
    report = retry_on_deadlock(service.tick)(runs=DagsterRuns(context.instance))
    for processing, step in report.opened:
        context.log.info(f"{processing}: submission window of {step} opened")
    for name in report.finished_processings:
        context.log.info(f"{name}: every calibration signed off or excluded; processing finished")
    for line in report.recovered:
        context.log.warning(f"reconciliation: {line}")
    for run_id in report.terminate:
        _terminate(context, run_id)
    launches = [launch for launch in report.launches if not handled_by_own_run(context.instance, launch)]
    return dg.SensorResult(
        run_requests=[run_request_for(launch) for launch in launches],
        dynamic_partitions_requests=partitions,
    )


def _terminate(context, run_id: str) -> None:
    """A manager restarted or excluded the step: the run of its cancelled attempt is stopped."""
    try:
        if context.instance.run_coordinator.cancel_run(run_id):
            context.log.info(f"run {run_id} of a cancelled attempt terminated")
    except Exception as exc:  # the next tick tries again
        context.log.warning(f"could not terminate run {run_id} of a cancelled attempt: {exc}")


@dg.sensor(
    name="staging_sensor",
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Exports the staging global tag of each processing that finished (copies the signed-off "
    "payloads), outside the loop's tick.",
)
def staging_sensor(context: dg.SensorEvaluationContext, loop: CalibrationLoopResource):
    results = loop.service().export_due_staging()
    for staged in results:
        if staged.ok:
            context.log.info(f"{staged.processing}: staging tag {staged.tag} exported to {staged.directory}")
        else:
            context.log.warning(
                f"{staged.processing}: staging tag not exported: " + "; ".join(staged.problems)
            )
    text = f"{len(results)} staging tag(s) exported" if results else "no processing finished"
    return dg.SensorResult(skip_reason=dg.SkipReason(text))


def handled_by_own_run(instance: dg.DagsterInstance, launch: Launch) -> bool:
    """A finished attempt's own run is still going (its checks run there) or already included the sign-off."""
    if not launch.checks_only or not launch.attempt_run_id:
        return False
    run = instance.get_run_by_id(launch.attempt_run_id)
    if run is None:
        return False
    if not run.is_finished:
        return True
    return signoff_key(launch.step) in (run.asset_selection or set())


@dg.sensor(
    name=DECISIONS_SENSOR,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports what people decided on the calibration pages or with the b2cal command "
    "(sign-offs and rejects, submissions, restarts, exclusions, reassignments, uploads) as events of the "
    "calibration's assets, with who decided: a sign-off materialises signoff/<calibration> and its "
    "'accepted' check fails on a reject.",
)
def decisions_sensor(context: dg.SensorEvaluationContext, loop: CalibrationLoopResource):

    service = loop.service()
    last_id = int(context.cursor or 0)
    decisions, cursor = decisions_after(service, last_id)
    events = [event for decision in decisions for event in decision_events(decision, service.steps)]
    for decision in decisions:
        context.log.info(
            f"{decision.processing}/{decision.calibration}: {decision.decision} by {decision.by}"
            + (" (in a Dagster run)" if decision.dagster_run_id else "")
        )
    return dg.SensorResult(
        asset_events=events,
        cursor=str(cursor),
        skip_reason=None if events else dg.SkipReason(f"no new decision after audit entry {cursor}"),
    )
