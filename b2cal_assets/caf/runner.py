"""Run one calibration script the framework's way: collector subjobs, algorithm, iterations, outputdb.

Layout under ``job.workdir``::

    state.json                         checkpoint: a rerun of the same job resumes from it
    <cal>/<iteration>/collector_input/ subjob specs (<i>.json) and the job manager's jobs.json
    <cal>/<iteration>/collector_output/<i>/  one subjob: run.sh, stdout, stderr, exit_code, collected.npz
    <cal>/<iteration>/algorithm_output/outputdb/  this iteration's payloads (conditions of the next one)
    outputdb/                          the job's payloads: database.txt + dbstore_<P>_rev_<r>.root

Conditions a job sees come from a chain of outputdb directories where LATER entries override
earlier ones: ``job.database_chain`` (newest upstream last), then this job's ``outputdb`` (earlier
calibrations of the same script), then the previous iteration of the calibration itself.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from b2cal_assets.backends.base import BatchBackend, JobSpec, JobState, describe_exit
from b2cal_assets.backends.manager import JobManager, Progress, RetryPolicy, SubmitPolicy
from b2cal_assets.backends.wrapper import log_tail
from b2cal_assets.caf.framework import (
    AlgorithmContext,
    AlgorithmResult,
    AlgorithmStatus,
    Calibration,
    Strategy,
)
from b2cal_assets.caf.localdb import ConditionsChain, StoredPayload, write_outputdb
from b2cal_assets.caf.splitting import ordered_files, split_files
from b2cal_assets.caf.subjob import (
    COLLECTED_FILE,
    SubjobSpec,
    call_get_calibrations,
    load_script,
    read_collected,
    script_context,
    sum_collected,
)
from b2cal_assets.domain.framework_required import FrameworkRequired
from b2cal_assets.domain.iov import ExpRun, IoV
from b2cal_assets.files import atomic_write_text

__all__ = [
    "CalibrationFailed",
    "CalibrationJob",
    "CalibrationOutcome",
    "SubjobRecord",
    "WorkdirInUse",
    "run_calibration_job",
]

STATE_FILE = "state.json"
OUTPUTDB = "outputdb"

ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass(kw_only=True)
class CalibrationJob:
    """One run of a calibration script over a bucket of input files.

    ``database_chain``: outputdb directories whose payloads are the conditions; LATER entries
    override earlier ones (newest upstream payloads last, as in a global-tag chain).
    ``max_files_per_collector_job`` / ``max_collector_jobs`` override the Calibration's own
    splitting; ``max_iterations=None`` keeps each Calibration's own limit.
    """

    script_file: Path
    calibration_script_name: str
    input_data: Mapping[str, Mapping[str, IoV]]
    requested_iov: IoV
    workdir: Path
    calibrations_dir: Path | None = None
    expert_config: Mapping[str, Any] = field(default_factory=dict)
    database_chain: Sequence[Path] = field(default_factory=list)
    max_files_per_collector_job: int | None = None
    max_collector_jobs: int | None = None
    max_iterations: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    backend_args: Mapping[str, Any] = field(default_factory=dict)  # the site's and the submission's

    def identity(self) -> dict[str, Any]:
        """What makes two jobs the same (a rerun resumes only the same job)."""
        return {
            "script_file": str(Path(self.script_file).resolve()),
            "calibration_script_name": self.calibration_script_name,
            "input_data": {
                k: {p: list(iov) for p, iov in sorted(v.items())} for k, v in sorted(self.input_data.items())
            },
            "requested_iov": list(self.requested_iov),
            "expert_config": json.loads(json.dumps(dict(self.expert_config), sort_keys=True, default=str)),
            "database_chain": [str(Path(p).resolve()) for p in self.database_chain],
            "max_files_per_collector_job": self.max_files_per_collector_job,
            "max_collector_jobs": self.max_collector_jobs,
            "max_iterations": self.max_iterations,
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class SubjobRecord:
    """One collector subjob as it ended: enough to find its logs."""

    calibration: str
    iteration: int
    name: str
    state: str
    exit_code: int | None
    workdir: Path
    tries: int = 1
    #: the job's own start and end (Unix epoch seconds, from its wrapper); None when unknown
    started_at: float | None = None
    finished_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "workdir": str(self.workdir)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubjobRecord:
        return cls(**{**data, "workdir": Path(data["workdir"])})


@dataclass
class CalibrationOutcome:
    outputdb: Path
    payloads: list[StoredPayload]
    iterations: dict[str, int]
    subjobs: list[SubjobRecord]
    #: each Calibration's own payloads (the framework keeps one outputdb per calibration)
    payloads_by_calibration: dict[str, list[StoredPayload]] = field(default_factory=dict)


class CalibrationFailed(RuntimeError):
    """A calibration failed; the message names the calibration, iteration, subjob and its log tail."""

    def __init__(
        self,
        message: str,
        *,
        calibration: str | None = None,
        iteration: int | None = None,
        subjob: str | None = None,
        exit_code: int | None = None,
        log_tail: str | None = None,
        subjobs: list[SubjobRecord] | None = None,
    ) -> None:
        super().__init__(message)
        self.calibration = calibration
        self.iteration = iteration
        self.subjob = subjob
        self.exit_code = exit_code
        self.log_tail = log_tail
        #: the jobs that ran, when no checkpoint holds them (the framework runner's one job)
        self.subjobs = subjobs


class WorkdirInUse(ValueError):
    """The work directory holds the checkpoint of a different job."""


def run_calibration_job(
    job: CalibrationJob,
    backend: BatchBackend,
    *,
    submit_policy: SubmitPolicy | None = None,
    retry_policy: RetryPolicy | None = None,
    progress: ProgressCallback | None = None,
    poll_interval: float | None = None,
    should_cancel: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CalibrationOutcome:
    """Run every Calibration the script returns, in order, and write their payloads to ``workdir/outputdb``.

    ``progress`` receives dicts with ``phase``, ``calibration``, ``iteration``, ``message`` and, while
    collector subjobs run, ``jobs`` (a ``Progress``). Raises ``CalibrationFailed``; the manager's
    ``JobsCancelled`` passes through (the checkpoint stays, a rerun resumes).
    """
    submit_policy = submit_policy or SubmitPolicy()
    if poll_interval is not None:
        submit_policy = SubmitPolicy(**{**submit_policy.__dict__, "poll_interval_s": poll_interval})
    runner = _Runner(
        job, backend, submit_policy, retry_policy or RetryPolicy(), progress, should_cancel, clock, sleep
    )
    return runner.run()


class _State:
    """``state.json``: written atomically after every step."""

    def __init__(self, path: Path, fingerprint: str, identity: Mapping[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "version": 1,
            "fingerprint": fingerprint,
            "job": identity,
            "calibrations": {},
        }
        if path.exists():
            try:
                saved = json.loads(path.read_text())
            except ValueError as exc:
                raise WorkdirInUse(
                    f"{path} is not readable ({exc}); remove it to start this job afresh"
                ) from None
            if saved.get("fingerprint") != fingerprint:
                raise WorkdirInUse(
                    f"{path.parent} holds the checkpoint of a different calibration job "
                    f"(script {saved.get('job', {}).get('script_file')}); use another workdir or remove it"
                )
            self.data = saved

    def cal(self, name: str) -> dict[str, Any]:
        state: dict[str, Any] = self.data["calibrations"].setdefault(
            name, {"status": "pending", "iteration": 0, "iterations": 0, "payloads": [], "subjobs": []}
        )
        return state

    def completed_payloads(self, order: Sequence[str]) -> list[StoredPayload]:
        out: list[StoredPayload] = []
        for name in order:
            cs = self.data["calibrations"].get(name)
            if cs and cs["status"] == "completed":
                out.extend(StoredPayload.from_json(p) for p in cs["payloads"])
        return out

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True))


@dataclass
class _RunSet:
    runs: list[ExpRun]
    result: AlgorithmResult
    start: ExpRun | None = None  # where its payloads begin, when not at its first run (payload boundaries)


class _Runner:
    def __init__(
        self,
        job: CalibrationJob,
        backend: BatchBackend,
        submit_policy: SubmitPolicy,
        retry_policy: RetryPolicy,
        progress: ProgressCallback | None,
        should_cancel: Callable[[], bool] | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.job = job
        self.backend = backend
        self.submit_policy = submit_policy
        self.retry_policy = retry_policy
        self.progress = progress
        self.should_cancel = should_cancel
        self.clock = clock
        self.sleep = sleep
        self.workdir = Path(job.workdir).resolve()
        self.outputdb = self.workdir / OUTPUTDB
        self.script_file = Path(job.script_file).resolve()
        self.calibrations_dir = Path(job.calibrations_dir).resolve() if job.calibrations_dir else None
        self.input_data = {k: {p: IoV(*iov) for p, iov in v.items()} for k, v in job.input_data.items()}
        self.requested_iov = IoV(*job.requested_iov)
        self.expert_config = dict(job.expert_config)

    # -- top level ------------------------------------------------------------------------------

    def run(self) -> CalibrationOutcome:
        if self.job.max_files_per_collector_job is not None and self.job.max_collector_jobs is not None:
            raise ValueError("set max_files_per_collector_job or max_collector_jobs, not both")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state = _State(self.workdir / STATE_FILE, self.job.fingerprint(), self.job.identity())
        calibrations = self._get_calibrations()
        order = [c.name for c in calibrations]
        self.state.data["order"] = order
        self.state.save()
        for cal in calibrations:
            cs = self.state.cal(cal.name)
            if cs["status"] == "completed":
                self._emit("skipped", cal.name, None, f"{cal.name}: already completed in an earlier run")
                continue
            self._run_calibration(cal, cs, order)
        if not (self.outputdb / "database.txt").exists():
            write_outputdb(self.outputdb, self.state.completed_payloads(order), [])
        calibrations_state = self.state.data["calibrations"]
        return CalibrationOutcome(
            outputdb=self.outputdb,
            payloads=self.state.completed_payloads(order),
            iterations={name: calibrations_state[name]["iterations"] for name in order},
            subjobs=[
                SubjobRecord.from_json(s) for name in order for s in calibrations_state[name]["subjobs"]
            ],
            payloads_by_calibration={name: self.state.completed_payloads([name]) for name in order},
        )

    def _get_calibrations(self) -> list[Calibration]:
        where = f"calibration script {self.job.calibration_script_name} ({self.script_file})"
        try:
            module = load_script(self.script_file, self.calibrations_dir)
            with script_context(self.script_file, self.calibrations_dir):
                calibrations = call_get_calibrations(
                    module, self.input_data, self.requested_iov, self.expert_config
                )
        except FrameworkRequired as exc:
            raise CalibrationFailed(f"{where}: {exc.for_calibration(self.job.calibration_script_name)}") from None
        except Exception as exc:
            raise CalibrationFailed(
                f"{where}: get_calibrations failed: {type(exc).__name__}: {exc}\n{_tb(exc)}"
            ) from exc
        if not calibrations:
            raise CalibrationFailed(
                f"{where}: get_calibrations returned no calibrations; is the input data empty?"
            )
        for cal in calibrations:
            try:
                cal.check_runnable()
            except (FrameworkRequired, ValueError) as exc:
                raise CalibrationFailed(f"{where}: {exc}", calibration=cal.name) from None
        return calibrations

    def _run_calibration(self, cal: Calibration, cs: dict[str, Any], order: Sequence[str]) -> None:
        max_iterations = self.job.max_iterations or cal.max_iterations
        if not cal.input_files:
            raise CalibrationFailed(f"calibration {cal.name}: no input files", calibration=cal.name)
        base_chain = [*(Path(p) for p in self.job.database_chain), self.outputdb]
        iteration = int(cs["iteration"])
        cs["status"] = "running"
        while True:
            itdir = self.workdir / cal.name / str(iteration)
            chain = list(base_chain)
            if iteration > 0:
                chain.append(self.workdir / cal.name / str(iteration - 1) / "algorithm_output" / OUTPUTDB)
            cs["iteration"] = iteration
            self.state.save()
            collected = self._collect(cal, iteration, itdir, chain, cs)
            self._emit(
                "algorithm", cal.name, iteration, f"{cal.name} iteration {iteration}: running the algorithm"
            )
            with script_context(self.script_file, self.calibrations_dir):
                sets = self._algorithm(cal, iteration, collected, ConditionsChain(chain))
            new = [
                (name, iov, constants)
                for iov, rs in self._iovs(sets)
                for name, constants in rs.result.payloads.items()
            ]
            write_outputdb(itdir / "algorithm_output" / OUTPUTDB, [], new)
            iterate = any(rs.result.status == AlgorithmStatus.ITERATE for rs in sets)
            if iterate and iteration + 1 < max_iterations:
                self._emit(
                    "iterate", cal.name, iteration, f"{cal.name}: the algorithm asks for another iteration"
                )
                iteration += 1
                cs["iteration"] = iteration
                self.state.save()
                continue
            if iterate:
                self._emit(
                    "max_iterations",
                    cal.name,
                    iteration,
                    f"{cal.name}: reached max_iterations={max_iterations}; keeping the last payloads",
                )
            written = write_outputdb(self.outputdb, self.state.completed_payloads(order), new)
            cs.update(status="completed", iterations=iteration + 1, payloads=[p.to_json() for p in written])
            self.state.save()
            self._emit(
                "completed",
                cal.name,
                iteration,
                f"{cal.name}: completed after {iteration + 1} iteration(s), {len(written)} payload(s)",
            )
            return

    # -- collector ------------------------------------------------------------------------------

    def _collect(
        self, cal: Calibration, iteration: int, itdir: Path, chain: list[Path], cs: dict[str, Any]
    ) -> dict[ExpRun, dict[str, np.ndarray]]:
        if self.job.max_files_per_collector_job is not None or self.job.max_collector_jobs is not None:
            split = {
                "max_files_per_collector_job": self.job.max_files_per_collector_job,
                "max_collector_jobs": self.job.max_collector_jobs,
            }
        else:
            split = {
                "max_files_per_collector_job": cal.max_files_per_collector_job,
                "max_collector_jobs": cal.max_collector_jobs,
            }
        chunks = split_files(ordered_files(cal.input_files), **split)
        input_dir, output_dir = itdir / "collector_input", itdir / "collector_output"
        for d in (input_dir, output_dir, itdir / "algorithm_output"):
            d.mkdir(parents=True, exist_ok=True)
        backend_args = {
            **cal.backend_args,
            **dict(self.job.backend_args),
            **dict(self.expert_config.get("backend_args") or {}),
        }
        specs = []
        for i, files in enumerate(chunks):
            sub_wd = output_dir / str(i)
            sub_wd.mkdir(exist_ok=True)
            spec_path = input_dir / f"{i}.json"
            # paths as the job sees them: a remote site's jobs find copies under its remote root
            at = self.backend.job_path
            subjob = SubjobSpec(
                script_file=Path(at(self.script_file)),
                calibrations_dir=Path(at(self.calibrations_dir)) if self.calibrations_dir else None,
                calibration=cal.name,
                input_data=self.input_data,
                requested_iov=self.requested_iov,
                expert_config=self.expert_config,
                iteration=iteration,
                files=files,
                conditions_chain=[Path(at(p)) for p in chain],
                output=Path(at(sub_wd / COLLECTED_FILE)),
            )
            _write_text(spec_path, subjob.to_json())
            specs.append(
                JobSpec(
                    name=f"{cal.name}.{iteration}.{i}",
                    argv=(self.backend.job_python(), "-m", "b2cal_assets.caf.subjob", at(spec_path)),
                    workdir=sub_wd,
                    env=dict(self.job.env),
                    backend_args=backend_args,
                    inputs=(self.calibrations_dir or self.script_file, *chain, spec_path),
                )
            )
        self._emit(
            "collector",
            cal.name,
            iteration,
            f"{cal.name} iteration {iteration}: {len(specs)} collector subjob(s)",
        )
        manager = JobManager(
            self.backend,
            submit=self.submit_policy,
            retry=self.retry_policy,
            clock=self.clock,
            sleep=self.sleep,
            state_file=input_dir / "jobs.json",
        )

        def on_progress(p: Progress) -> None:
            self._emit("collector", cal.name, iteration, f"{cal.name} iteration {iteration}: {p}", jobs=p)

        def on_warning(message: str) -> None:
            self._emit("collector", cal.name, iteration, f"{cal.name} iteration {iteration}: {message}")

        results = manager.run(
            specs, on_progress=on_progress, should_cancel=self.should_cancel, on_warning=on_warning
        )
        records = [
            SubjobRecord(
                cal.name,
                iteration,
                r.spec.name,
                r.state.value,
                r.exit_code,
                Path(r.spec.workdir),
                r.tries,
                r.started_at,
                r.finished_at,
            )
            for r in results
        ]
        cs["subjobs"] = [s for s in cs["subjobs"] if s["iteration"] != iteration] + [
            r.to_json() for r in records
        ]
        self.state.save()
        failed = [r for r in results if r.state != JobState.DONE]
        if failed:
            r = failed[0]
            tail = log_tail(r.spec.workdir)
            raise CalibrationFailed(
                f"calibration {cal.name} iteration {iteration}: collector subjob {r.spec.name} failed "
                f"with {describe_exit(r.exit_code, r.reason)} after {r.tries} try(ies); "
                f"{len(failed)} of {len(results)} subjob(s) failed. Logs in {r.spec.workdir}\n{tail}",
                calibration=cal.name,
                iteration=iteration,
                subjob=r.spec.name,
                exit_code=r.exit_code,
                log_tail=tail,
            )
        parts = []
        for r in results:
            path = Path(r.spec.workdir) / COLLECTED_FILE
            if not path.exists():
                raise CalibrationFailed(
                    f"calibration {cal.name} iteration {iteration}: collector subjob {r.spec.name} ended "
                    f"with exit code 0 but wrote no {COLLECTED_FILE} in {r.spec.workdir}",
                    calibration=cal.name,
                    iteration=iteration,
                    subjob=r.spec.name,
                    exit_code=r.exit_code,
                )
            parts.append(read_collected(path))
        return sum_collected(parts)

    # -- algorithm ------------------------------------------------------------------------------

    def _algorithm(
        self,
        cal: Calibration,
        iteration: int,
        collected: Mapping[ExpRun, Mapping[str, np.ndarray]],
        chain: ConditionsChain,
    ) -> list[_RunSet]:
        runs = sorted({ExpRun(*er) for er in cal.input_files.values()})

        def execute(run_set: list[ExpRun]) -> AlgorithmResult:
            data = sum_collected([{er: collected[er]} for er in run_set if er in collected])
            arrays = _merge_runs(data)
            ctx = AlgorithmContext(
                iteration=iteration,
                runs=tuple(run_set),
                conditions=chain.at(run_set[0]),
                expert_config=self.expert_config,
                requested_iov=self.requested_iov,
            )
            where = f"calibration {cal.name} iteration {iteration} (runs {_runs_text(run_set)})"
            try:
                result = cal.algorithm(arrays, ctx)
            except Exception as exc:
                raise CalibrationFailed(
                    f"{where}: the algorithm raised {type(exc).__name__}: {exc}\n{_tb(exc)}",
                    calibration=cal.name,
                    iteration=iteration,
                ) from exc
            if not isinstance(result, AlgorithmResult):
                raise CalibrationFailed(
                    f"{where}: the algorithm returned {type(result).__name__}, not an AlgorithmResult",
                    calibration=cal.name,
                    iteration=iteration,
                )
            result.status = AlgorithmStatus(result.status)
            if result.status == AlgorithmStatus.FAILURE:
                raise CalibrationFailed(
                    f"{where}: the algorithm failed: {result.message or 'no message'}",
                    calibration=cal.name,
                    iteration=iteration,
                )
            if result.status in (AlgorithmStatus.OK, AlgorithmStatus.ITERATE):
                self._check_payloads(cal, result, where, iteration)
            return result

        sets: list[_RunSet] = []
        if cal.strategy == Strategy.SIMPLE_RUN_BY_RUN:
            for er in runs:
                result = execute([er])
                if result.status == AlgorithmStatus.NOT_ENOUGH_DATA:
                    raise CalibrationFailed(
                        f"calibration {cal.name} iteration {iteration}: not enough data in run {_runs_text([er])} "
                        f"(SimpleRunByRun calibrates every run on its own): {result.message or 'no message'}",
                        calibration=cal.name,
                        iteration=iteration,
                    )
                sets.append(_RunSet([er], result))
            return sets
        if cal.strategy == Strategy.SEQUENTIAL_BOUNDARIES:
            for interval, interval_runs in self._boundary_intervals(cal, runs).items():
                if not interval_runs:
                    continue
                result = execute(interval_runs)
                if result.status == AlgorithmStatus.NOT_ENOUGH_DATA:
                    raise CalibrationFailed(
                        f"calibration {cal.name} iteration {iteration}: not enough data between the payload "
                        f"boundaries {interval} (runs {_runs_text(interval_runs)}): {result.message or 'no message'}",
                        calibration=cal.name,
                        iteration=iteration,
                    )
                sets.append(_RunSet(interval_runs, result, ExpRun(interval.exp_low, interval.run_low)))
            return sets
        if cal.strategy == Strategy.SINGLE_IOV:
            result = execute(runs)
            if result.status == AlgorithmStatus.NOT_ENOUGH_DATA:
                raise CalibrationFailed(
                    f"calibration {cal.name} iteration {iteration}: not enough data in all {len(runs)} run(s) "
                    f"together: {result.message or 'no message'}",
                    calibration=cal.name,
                    iteration=iteration,
                )
            return [_RunSet(runs, result)]

        pending: list[ExpRun] = []
        for er in runs:
            pending.append(er)
            result = execute(pending)
            if result.status == AlgorithmStatus.NOT_ENOUGH_DATA:
                continue
            sets.append(_RunSet(pending, result))
            pending = []
        if pending:
            if not sets:
                raise CalibrationFailed(
                    f"calibration {cal.name} iteration {iteration}: not enough data even with all {len(runs)} "
                    f"run(s) merged ({_runs_text(runs)})",
                    calibration=cal.name,
                    iteration=iteration,
                )
            merged = sets[-1].runs + pending
            self._emit(
                "algorithm",
                cal.name,
                iteration,
                f"{cal.name}: folding leftover run(s) {_runs_text(pending)} into the last set",
            )
            result = execute(merged)
            if result.status == AlgorithmStatus.NOT_ENOUGH_DATA:
                raise CalibrationFailed(
                    f"calibration {cal.name} iteration {iteration}: the last run set {_runs_text(merged)} "
                    "reports not enough data after folding in the leftover runs",
                    calibration=cal.name,
                    iteration=iteration,
                )
            sets[-1] = _RunSet(merged, result)
        return sets

    def _boundary_intervals(self, cal: Calibration, runs: list[ExpRun]) -> dict[IoV, list[ExpRun]]:
        """Runs per payload-boundary interval: the algorithm's ``params["payload_boundaries"]`` or the
        expert_config's ``payload_boundaries``; the requested IoV's start is always a boundary."""
        declared = next(
            (a.params["payload_boundaries"] for a in cal.algorithms if "payload_boundaries" in a.params), None
        )
        if declared is None:
            declared = self.expert_config.get("payload_boundaries") or []
        try:
            boundaries = sorted({ExpRun(int(b[0]), int(b[1])) for b in declared} | {self.requested_iov.start})
        except (TypeError, ValueError, IndexError):
            raise CalibrationFailed(
                f"calibration {cal.name}: payload_boundaries must be a list of [exp, run], got {declared!r}",
                calibration=cal.name,
            ) from None
        intervals: dict[IoV, list[ExpRun]] = {}
        for index, start in enumerate(boundaries):
            end = boundaries[index + 1] if index + 1 < len(boundaries) else None
            inside = [er for er in runs if er >= start and (end is None or er < end)]
            high = (-1, -1) if end is None else (end.exp, end.run - 1)
            intervals[IoV(start.exp, start.run, *high)] = inside
        return intervals

    def _check_payloads(self, cal: Calibration, result: AlgorithmResult, where: str, iteration: int) -> None:
        if not result.payloads:
            raise CalibrationFailed(
                f"{where}: the algorithm returned status {result.status.value} but no payloads",
                calibration=cal.name,
                iteration=iteration,
            )
        unknown = sorted(set(result.payloads) - set(cal.payload_names)) if cal.payload_names else []
        if unknown:
            raise CalibrationFailed(
                f"{where}: the algorithm returned payload(s) {', '.join(unknown)} not declared in "
                f"payload_names ({', '.join(cal.payload_names)})",
                calibration=cal.name,
                iteration=iteration,
            )

    def _iovs(self, sets: list[_RunSet]) -> list[tuple[IoV, _RunSet]]:
        """The first set starts at the requested IoV's start, each ends before the next, the last is open."""
        out = []
        req = self.requested_iov
        for i, rs in enumerate(sets):
            low = ExpRun(req.exp_low, req.run_low) if i == 0 else (rs.start or rs.runs[0])
            if i == len(sets) - 1:
                out.append((IoV(low.exp, low.run, -1, -1), rs))
                continue
            nxt = sets[i + 1].start or sets[i + 1].runs[0]
            high = ExpRun(nxt.exp, nxt.run - 1) if nxt.run > 0 else rs.runs[-1]
            out.append((IoV(low.exp, low.run, high.exp, high.run), rs))
        return out

    def _emit(
        self,
        phase: str,
        calibration: str | None,
        iteration: int | None,
        message: str,
        jobs: Progress | None = None,
    ) -> None:
        if self.progress is None:
            return
        event: dict[str, Any] = {
            "phase": phase,
            "calibration": calibration,
            "iteration": iteration,
            "message": message,
        }
        if jobs is not None:
            event["jobs"] = jobs
        self.progress(event)


def _merge_runs(data: Mapping[ExpRun, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    total: dict[str, np.ndarray] = {}
    for arrays in data.values():
        for name, values in arrays.items():
            total[name] = total[name] + values if name in total else np.array(values, copy=True)
    return total


def _runs_text(runs: Sequence[ExpRun]) -> str:
    if not runs:
        return "none"
    if len(runs) == 1:
        return f"{runs[0].exp}/{runs[0].run}"
    return f"{runs[0].exp}/{runs[0].run}..{runs[-1].exp}/{runs[-1].run} ({len(runs)} runs)"


def _tb(exc: BaseException, lines: int = 15) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join(text.splitlines()[-lines:])


def _write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)
