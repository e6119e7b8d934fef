"""Drive sensors and the run requests they make in one process, the way the daemon would.

The daemon itself is exercised by the end-to-end test (``e2e/``); this keeps sensor logic fast to test.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import dagster as dg


def evaluate(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, cursor: str | None = None):
    sensor = defs.resolve_sensor_def(name)
    resources = defs.resolve_all_asset_specs and defs.get_repository_def().get_top_level_resources()
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources, definitions=defs
    ) as ctx:
        result = sensor(ctx)
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.DeleteDynamicPartitionsRequest):
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
        else:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for event in result.asset_events or []:
        instance.report_runless_asset_event(event)
    return result


def sensor_tags(request: dg.RunRequest, sensor: str = "calibration_loop_sensor") -> dict[str, str]:
    """The tags the daemon puts on a sensor's run: its run key and sensor name (the loop reconciles by them)."""
    tags = dict(request.tags)
    if request.run_key:
        tags.update({"dagster/run_key": request.run_key, "dagster/sensor_name": sensor})
    return tags


def execute(defs: dg.Definitions, request: dg.RunRequest, instance: dg.DagsterInstance):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config=request.run_config,
        instance=instance,
        partition_key=request.partition_key,
        asset_selection=list(request.asset_selection or []),
        tags=sensor_tags(request),
        raise_on_error=False,
    )


@dataclass(frozen=True)
class ChildRun:
    """What a run executed in another process reports back (``success``, ``run_id``)."""

    success: bool
    run_id: str


def _execute_in_child(
    factory: Callable[..., dg.Definitions], args: tuple, ref, request: dg.RunRequest
) -> ChildRun:
    with dg.DagsterInstance.from_ref(ref) as instance:
        result = execute(factory(*args), request, instance)
        return ChildRun(result.success, result.run_id)


def drive(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    max_rounds: int = 30,
    parallel: tuple[Callable[..., dg.Definitions], tuple] | None = None,
) -> list:
    """Tick both sensors and run what they request until nothing more is requested.

    ``parallel`` (a module-level function building the definitions, and its arguments) runs one
    tick's requests at the same time, each in a process of its own as the daemon's run workers
    would, so the processings of several sites are in flight together."""
    results = []
    cursor = None
    for _ in range(max_rounds):
        arrival = evaluate(defs, "data_arrival_sensor", instance, cursor)
        cursor = arrival.cursor
        loop = evaluate(defs, "calibration_loop_sensor", instance)
        if not loop.run_requests:
            break
        if parallel is not None and len(loop.run_requests) > 1:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=len(loop.run_requests), mp_context=context) as pool:
                work = functools.partial(_execute_in_child, parallel[0], parallel[1], instance.get_ref())
                results.extend(zip(loop.run_requests, pool.map(work, loop.run_requests), strict=True))
            continue
        for request in loop.run_requests:
            results.append((request, execute(defs, request, instance)))
    return results


def check_metadata(instance: dg.DagsterInstance, results, calibration: str, processing: str | None = None) -> dict:
    """The metadata of the last validation check of ``calibration`` (in ``processing``) in ``results``' runs."""
    from b2cal_assets.defs.keys import VALIDATION_CHECK, payloads_key

    found: dict = {}
    for request, result in results:
        if processing is not None and request.partition_key != processing:
            continue
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is None or event.event_type_value != "ASSET_CHECK_EVALUATION":
                continue
            evaluation = event.event_specific_data
            if evaluation.check_name == VALIDATION_CHECK and evaluation.asset_key == payloads_key(calibration):
                found = dict(evaluation.metadata)
    assert found, f"no validation check of {calibration} in the runs"
    return found
