"""The bodies of the calibration and cDST assets: attempts recorded, jobs run, payloads stored."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

from b2cal_assets import home
from b2cal_assets.backends.base import BackendError
from b2cal_assets.backends.container import ContainerBackend
from b2cal_assets.backends.manager import xrootd_env
from b2cal_assets.caf.cdst_job import CdstOutput
from b2cal_assets.caf.cdst_production import (
    CdstFailed,
    CdstProduction,
    CdstRun,
    check_producer,
    run_cdst_jobs,
)
from b2cal_assets.caf.framework_runner import FrameworkRunner, framework_argv, run_framework_job
from b2cal_assets.caf.runner import STATE_FILE, CalibrationFailed, CalibrationJob, run_calibration_job
from b2cal_assets.db.engine import retry_while_unreachable
from b2cal_assets.defs.keys import REASON_TAG, REQUESTED_BY_TAG
from b2cal_assets.defs.run_tags import submitted_by
from b2cal_assets.domain.settings import ContractError
from b2cal_assets.domain.site_runner import FrameworkSettings, RunnerKind, framework_settings
from b2cal_assets.domain.states import AttemptState
from b2cal_assets.files import atomic_copytree
from b2cal_assets.loop.reconcile import RESUME_TAG
from b2cal_assets.loop.service import AttemptTicket, LoopError, LoopService, SubmissionHeld
from b2cal_assets.loop.steps import StepInfo
from b2cal_assets.loop.submission import checked_submission
from b2cal_assets.settings import settings as b2cal_settings

T = TypeVar("T")


def _fail(message: str) -> dg.Failure:
    return dg.Failure(description=message)


def again_while_unreachable(context, what: str, work: Callable[[], T]) -> T:
    """A run's calibration-database work, tried again while the database restarts (``B2CAL_DB_RETRY_S``):
    hours of batch work are not failed for a restart. Each ``work`` is idempotent."""
    return retry_while_unreachable(work, what=what, on_retry=context.log.warning)


def _begin(context, service: LoopService, processing: str, calibration: str, **kwargs) -> AttemptTicket:
    """``begin_attempt``, tried again while the database restarts. A retry names this run among the runs
    whose attempt it takes over, so an attempt whose COMMIT went through unanswered is resumed, not doubled."""
    tries = [0]

    def begin() -> AttemptTicket:
        tries[0] += 1
        ids = list(kwargs.get("resume_run_ids", ()))
        if tries[0] > 1:
            ids.append(context.run.run_id)
        return service.begin_attempt(processing, calibration, **{**kwargs, "resume_run_ids": ids})

    return again_while_unreachable(context, f"recording the start of {calibration} in {processing}", begin)


def _finish(context, service: LoopService, ticket: AttemptTicket, outcome, iterations: int) -> list:
    """``finish_attempt``, tried again while the database restarts; a retry after a COMMIT that went
    through unanswered finds the attempt finished and returns what is recorded (the copy kept)."""
    tries = [0]

    def finish() -> list:
        tries[0] += 1
        if tries[0] > 1 and service.attempt_state(ticket.attempt_id) == AttemptState.FINISHED:
            atomic_copytree(outcome.outputdb, ticket.payload_dir / "outputdb")  # removed by the failed try
            return service.current_payloads(ticket.processing, ticket.calibration)
        return service.finish_attempt(ticket, outcome.outputdb, outcome.payloads, iterations)

    return again_while_unreachable(
        context, f"recording the payloads of {ticket.calibration} in {ticket.processing}", finish
    )


def checked_job_settings(script, config) -> tuple[dict[str, Any], dict[str, Any]]:
    """The launchpad's ``SubmitConfig`` checked by the loop's submission rules."""
    return checked_submission(script.settings, dict(config.expert_config), config.job_config())


def _backend_resource(context, service: LoopService, processing: str):
    site = again_while_unreachable(context, "reading the site", lambda: service.site_of(processing))
    key = f"{site.backend}_backend"
    try:
        return site, getattr(context.resources, key)
    except AttributeError:
        raise _fail(f"site {site.name} uses backend {site.backend!r}, which has no resource {key}") from None


def _build_backend(site, resource):
    """A remote site's commands run on its submit host (``site.remote``); the job manager is the same."""
    return resource.build_remote_backend(site.remote, site.name) if site.remote else resource.build_backend()


def site_backend(context, service: LoopService, processing: str):
    """The processing's site, its backend resource and its backend (for any job run at the site). A
    backend that cannot be built is a one-line failure naming the site."""
    site, resource = _backend_resource(context, service, processing)
    try:
        backend = _build_backend(site, resource)
    except (BackendError, NotImplementedError, ValueError) as exc:
        raise _fail(f"site {site.name}: {exc}") from None
    return site, resource, backend


def close_backend(context, *backends) -> None:
    """End what a step's backends hold open once its job manager is done: a remote site's SSH master
    connection (``ssh -O exit``), a container engine's client. Never fails the step: it is done."""
    for backend in {id(b): b for b in backends}.values():  # each once (a backend may be unhashable)
        close = getattr(backend, "close", None)
        if not callable(close):
            continue
        try:
            close()
        except Exception as exc:  # the connection ends by itself after ControlPersist
            context.log.warning(f"could not close the {getattr(backend, 'name', 'batch')} backend: {exc}")


def framework_backend(site, settings: FrameworkSettings, backend):
    """Where a framework site's jobs run: in a container of its image on the deployment's container
    engine when the site names one (docker/compose.container-jobs.yaml), else on the site's backend."""
    if not settings.container:
        return backend
    try:
        deployment = b2cal_settings()
        return ContainerBackend.configured(
            settings.container,
            mounts=deployment.job_container_mounts,
            network=deployment.job_container_network,
        )
    except BackendError as exc:
        raise _fail(
            f"site {site.name} runs the framework in container {settings.container}: {exc}; "
            "a stack needs docker/compose.container-jobs.yaml for that (README: Deploy)"
        ) from None


def run_calibration_attempt(context, config, service: LoopService, calibration: str, by: str):
    processing = context.partition_key
    script = service.scripts.calibrations[calibration]
    try:
        expert_config, job_config = checked_job_settings(script, config)
    except (ContractError, ValueError) as exc:
        raise _fail(f"{calibration}: the submission was refused: {exc}") from None
    try:
        ticket = _begin(
            context,
            service,
            processing,
            calibration,
            submitted_by=by,
            expert_config=dict(config.expert_config),
            job_config=job_config,
            dagster_run_id=context.run.run_id,
            resume_run_ids=resume_run_ids(context),
        )
    except SubmissionHeld as held:
        # not a failure: the site starts jobs at the deadline; the loop sensor launches the held settings then
        context.log.info(str(held))
        return None
    except LoopError as exc:
        raise _fail(str(exc)) from None
    # the attempt's own settings: a held submission, a restart or a resumed attempt brings its own
    expert_config, job_config = checked_submission(script.settings, ticket.expert_config, ticket.job_config)
    context.log.info(
        f"{calibration} in {processing}: attempt {ticket.number} submitted by {ticket.submitted_by} "
        f"with expert_config {json.dumps(expert_config, sort_keys=True)}"
    )
    site, backend_resource = _backend_resource(context, service, processing)
    try:
        outcome = _run_job(
            context, service, ticket, script, expert_config, job_config, site, backend_resource
        )
    except CalibrationFailed as exc:
        _record_jobs(
            context, service, ticket, site, [s.to_json() for s in exc.subjobs] if exc.subjobs else None
        )
        _unless_cancelled(context, service, ticket)
        record_failure = functools.partial(
            service.fail_attempt,
            ticket,
            str(exc),
            subjob=exc.subjob or "",
            log_tail=exc.log_tail or "",
            cause=exc,
        )
        again_while_unreachable(context, "recording the failure", record_failure)
        raise _fail(f"{calibration} in {processing} failed (attempt {ticket.number}): {exc}") from None
    except Exception as exc:
        _record_jobs(context, service, ticket, site, None)
        _unless_cancelled(context, service, ticket)
        error = f"{type(exc).__name__}: {exc}"
        again_while_unreachable(
            context,
            "recording the failure",
            functools.partial(service.fail_attempt, ticket, error, cause=exc),
        )
        raise
    except BaseException:
        # Interrupted (the run terminated, its worker stopped): not the calibration's failure. The
        # attempt stays running; the loop's reconciliation fails it if a person cancelled the run and
        # resumes it from its checkpoint otherwise. No waiting for the database here: the run is stopping.
        _record_jobs(context, service, ticket, site, None, wait=False)
        raise
    _record_jobs(context, service, ticket, site, [s.to_json() for s in outcome.subjobs])
    iterations = max(outcome.iterations.values(), default=0)
    _unless_cancelled(context, service, ticket)
    try:
        recorded = _finish(context, service, ticket, outcome, iterations)
    except Exception as exc:
        # the checkpoint says the job is complete: a resume records the payloads without rerunning
        message = f"recording the payloads failed: {type(exc).__name__}: {exc}"
        again_while_unreachable(
            context,
            "recording the failure",
            functools.partial(service.fail_attempt, ticket, message, cause=exc),
        )
        raise
    rows = [
        {"payload": p.name, "revision": p.revision, "iov": str(p.iov), "md5": p.checksum[:12]}
        for p in recorded
    ]
    return dg.MaterializeResult(
        metadata={
            "attempt": ticket.number,
            "submitted_by": ticket.submitted_by,  # whose settings: a loop run takes over a held attempt
            **_requested(context, ticket.submitted_by),
            "iterations": iterations,
            "payloads": dg.MetadataValue.md(_markdown_table(rows, ["payload", "revision", "iov", "md5"])),
            "outputdb": dg.MetadataValue.path(str(ticket.payload_dir / "outputdb")),
            "workdir": dg.MetadataValue.path(str(ticket.workdir)),
            "expert_config": dg.MetadataValue.json(expert_config),
            "subjobs": len(outcome.subjobs),
        }
    )


def _requested(context, submitter: str) -> dict[str, str]:
    """Who asked for this run and why: the loop's tags, or the person who launched it in Dagster."""

    tags = context.run.tags
    return {
        "requested_by": tags.get(REQUESTED_BY_TAG) or submitter,
        "reason": tags.get(REASON_TAG) or "launched in Dagster",
    }


def resume_run_ids(context) -> list[str]:
    """Runs whose attempt this run may take over: a re-execution's parent and root, or the dead run
    named by the loop's resume request (``loop/reconcile.py``)."""
    return [context.run.tags.get(t, "") for t in ("dagster/parent_run_id", "dagster/root_run_id", RESUME_TAG)]


def _unless_cancelled(context, service: LoopService, ticket: AttemptTicket) -> None:
    """A manager restarted or excluded the step while this run worked: record nothing of it."""
    state = again_while_unreachable(
        context, "reading the attempt's state", lambda: service.attempt_state(ticket.attempt_id)
    )
    if state == AttemptState.CANCELLED:
        raise _fail(
            f"{ticket.calibration} in {ticket.processing}: attempt {ticket.number} was cancelled by a manager "
            "(restart or exclusion) while it ran; nothing of this run is recorded"
        )


def _cancelled_check(service: LoopService, ticket: AttemptTicket):
    """For the job manager's poll loop: stop the batch jobs once a manager cancelled the attempt."""

    def cancelled() -> bool:
        try:
            return service.attempt_state(ticket.attempt_id) == AttemptState.CANCELLED
        except Exception:  # the database briefly away is no reason to stop the jobs
            return False

    return cancelled


def _fresh_workdir_if_changed(context, service: LoopService, ticket: AttemptTicket, job) -> AttemptTicket:
    """A restart reuses the failed attempt's work directory so only failed subjobs run again; if that
    checkpoint belongs to another job (upstream payloads or settings changed), start in its own."""
    state = ticket.workdir / STATE_FILE
    try:
        saved = json.loads(state.read_text()).get("fingerprint")
    except (OSError, ValueError):
        return ticket
    if saved == job.fingerprint():
        context.log.info(f"resuming from the checkpoint in {ticket.workdir}")
        return ticket
    own = home.attempt_work_dir(ticket.processing, ticket.calibration, ticket.number)
    if own == ticket.workdir:
        return ticket  # the runner says what is wrong with it
    context.log.info(
        f"the checkpoint in {ticket.workdir} is of a different job (inputs or conditions changed); "
        f"attempt {ticket.number} starts afresh in {own}"
    )
    return service.move_attempt_workdir(ticket, own)


def _record_jobs(
    context, service: LoopService, ticket: AttemptTicket, site, subjobs, *, wait: bool = True
) -> None:
    """The collector subjobs into the calibration DB (``b2cal status --jobs``); never fails the run.
    A resume records them again from the checkpoint, so a run that is stopping does not wait."""

    def record() -> int:
        return service.record_subjobs(ticket, site.backend, subjobs)

    try:
        if wait:
            again_while_unreachable(context, "recording the subjobs", record)
        else:
            record()
    except Exception as exc:  # bookkeeping only
        context.log.warning(f"could not record the collector subjobs of attempt {ticket.number}: {exc}")


def _run_job(
    context, service, ticket: AttemptTicket, script, expert_config, job_config, site, backend_resource
):
    input_data = again_while_unreachable(
        context,
        "reading the input files",
        lambda: service.input_data(
            ticket.processing, ticket.calibration, job_config.get("input_data_filters")
        ),
    )
    n_files = sum(len(files) for files in input_data.values())
    if n_files == 0:
        raise CalibrationFailed(
            f"no input files pass the input_data_filters of {ticket.calibration} in {ticket.processing}; "
            "check the data catalog or submit with other filters"
        )
    context.log.info(f"{n_files} input files: " + ", ".join(f"{k}={len(v)}" for k, v in input_data.items()))

    # the framework reads its inputs from local run directories (input_data.json), never through the prefix
    env = xrootd_env() if site.path_prefix and site.runner != RunnerKind.FRAMEWORK else {}
    job = CalibrationJob(
        script_file=script.file,
        calibrations_dir=script.file.parent,
        calibration_script_name=script.module_name,
        input_data=input_data,
        requested_iov=ticket.requested_iov,
        expert_config=expert_config,
        database_chain=again_while_unreachable(
            context,
            "reading the database chain",
            lambda: service.database_chain(ticket.processing, ticket.calibration),
        ),
        workdir=ticket.workdir,
        max_files_per_collector_job=job_config.get("max_files_per_collector_job"),
        max_collector_jobs=job_config.get("max_collector_jobs"),
        max_iterations=job_config.get("max_iterations"),
        env=env,
        backend_args={**site.backend_args, **job_config.get("backend_args", {})},
    )

    ticket = _fresh_workdir_if_changed(context, service, ticket, job)
    job = dataclasses.replace(job, workdir=ticket.workdir)
    last: list[str] = [""]

    def progress(event) -> None:
        """The runner reports every poll cycle; the run log gets a line only when something changed."""
        message = event.get("message", str(event)) if isinstance(event, dict) else str(event)
        if message != last[0]:
            last[0] = message
            context.log.info(f"{ticket.calibration}: {message}")

    backend = _build_backend(site, backend_resource)
    try:
        return _run_on(context, service, ticket, job, site, backend_resource, backend, progress)
    finally:
        close_backend(context, backend)


def _run_on(context, service, ticket: AttemptTicket, job, site, backend_resource, backend, progress):
    """The attempt's jobs on the site's ``backend`` (the framework's in its container, if it has one)."""
    if site.runner == RunnerKind.FRAMEWORK:
        if site.remote:
            raise _fail(
                f"site {site.name} has a submit host and runs the framework: the framework runner does not "
                "run at a remote site yet; use the b2cal runner there (b2cal site update "
                f"{site.name} --runner b2cal) or a site on this machine"
            )
        settings = framework_settings(site.runner_args, site.backend)
        runner = FrameworkRunner.of_site(settings, home.globaltags_root())
        inside = framework_backend(site, settings, backend)
        where = f"container {settings.container}" if settings.container else site.backend
        context.log.info(
            f"{ticket.calibration}: site {site.name} runs the framework: one {where} job running "
            + framework_argv(job, runner)[-1]
        )
        try:
            return run_framework_job(
                job,
                inside,
                runner,
                submit_policy=backend_resource.submit_policy(),
                progress=progress,
                should_cancel=_cancelled_check(service, ticket),
            )
        finally:
            close_backend(context, inside)
    return run_calibration_job(
        job,
        backend,
        submit_policy=backend_resource.submit_policy(),
        retry_policy=backend_resource.retry_policy(),
        progress=progress,
        should_cancel=_cancelled_check(service, ticket),
    )


def _markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def run_cdst_production(
    context, service: LoopService, step: StepInfo, producer_ref: str, *, files_per_job: int = 0
):
    """The cDST step: one batch job per run (or chunk of files) at the processing's site; each job's
    cDSTs registered as it is done; a restarted step skips the jobs whose cDSTs are registered."""
    processing = context.partition_key
    try:
        ticket = _begin(
            context,
            service,
            processing,
            step.name,
            submitted_by=submitted_by(context),
            expert_config={},
            job_config={},
            dagster_run_id=context.run.run_id,
            resume_run_ids=resume_run_ids(context),
        )
    except LoopError as exc:
        raise _fail(str(exc)) from None
    try:
        check_producer(producer_ref)
    except ValueError as exc:
        refused = functools.partial(service.fail_attempt, ticket, str(exc))
        again_while_unreachable(context, "recording the failure", refused)
        raise _fail(f"cDST production in {processing}: {exc}") from None
    out_dir = home.cdst_dir(processing).absolute()
    try:
        site, backend_resource, backend = site_backend(context, service, processing)
        production = CdstProduction(
            producer=producer_ref,
            runs=[
                CdstRun(tag, exp, run, tuple(files))
                for tag in step.raw_data_names
                for (exp, run), files in again_while_unreachable(
                    context,
                    "reading the raw files",
                    functools.partial(service.raw_files_at_site, processing, tag),
                ).items()
            ],
            conditions_chain=again_while_unreachable(
                context, "reading the database chain", lambda: service.database_chain(processing, step.name)
            ),
            workdir=out_dir,
            files_per_job=files_per_job or None,
            env=xrootd_env() if site.path_prefix and site.runner != RunnerKind.FRAMEWORK else {},
            backend_args=dict(site.backend_args),
            registered=frozenset(
                again_while_unreachable(
                    context, "reading the registered cDSTs", lambda: service.registered_cdsts(processing)
                )
            ),
        )

        def register(output: CdstOutput) -> None:
            again_while_unreachable(
                context,
                "registering a cDST file",
                functools.partial(
                    service.register_cdst,
                    processing,
                    path=output.path,
                    data_tag=output.data_tag,
                    exp=output.exp,
                    run=output.run,
                    n_events=output.n_events,
                    size_bytes=output.size_bytes,
                ),
            )
            context.log.info(
                f"cDST {output.data_tag} exp {output.exp} run {output.run}: {output.path} "
                f"({output.n_events} events)"
            )

        last: list[str] = [""]

        def progress(message: str) -> None:
            if message != last[0]:
                last[0] = message
                context.log.info(message)

        try:
            outcome = run_cdst_jobs(
                production,
                backend,
                on_output=register,
                submit_policy=backend_resource.submit_policy(),
                retry_policy=backend_resource.retry_policy(),
                progress=progress,
                should_cancel=_cancelled_check(service, ticket),
            )
        finally:
            close_backend(context, backend)  # a remote centre's SSH master, as after the collector jobs
    except CdstFailed as exc:
        _record_jobs(context, service, ticket, site, exc.jobs)
        _unless_cancelled(context, service, ticket)
        record_failure = functools.partial(
            service.fail_attempt, ticket, str(exc), subjob=exc.job, log_tail=exc.log_tail
        )
        again_while_unreachable(context, "recording the failure", record_failure)
        raise _fail(f"cDST production in {processing} failed (attempt {ticket.number}): {exc}") from None
    except Exception as exc:
        _unless_cancelled(context, service, ticket)
        error = f"{type(exc).__name__}: {exc}"
        again_while_unreachable(context, "recording the failure", lambda: service.fail_attempt(ticket, error))
        raise
    # an interruption (BaseException) leaves the attempt running for the loop's reconciliation
    _record_jobs(context, service, ticket, site, outcome.jobs)
    _unless_cancelled(context, service, ticket)
    again_while_unreachable(context, "recording the cDST production", lambda: service.complete_step(ticket))
    return dg.MaterializeResult(
        metadata={
            "files": len(outcome.outputs),
            "runs": len({(o.exp, o.run) for o in outcome.outputs}),
            "jobs": len(outcome.jobs),
            "skipped_jobs": outcome.skipped,  # their cDSTs were registered by an earlier attempt
            "data": ", ".join(step.raw_data_names),
            "site": site.name,
            "directory": dg.MetadataValue.path(str(out_dir)),
        }
    )
