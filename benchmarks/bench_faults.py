"""The fault matrix of issue 11: does the loop survive, with how many manual steps, how much slower?

    .venv/bin/python benchmarks/bench_faults.py            # everything, about 20 minutes on 2 loaded cores
    .venv/bin/python benchmarks/bench_faults.py --only database_restart_mariadb,daemon_killed
    .venv/bin/python benchmarks/bench_faults.py --slurm    # the job-manager part on the Slurm of .ci/services
    .venv/bin/python benchmarks/bench_faults.py --quick    # the job-manager part only, a few seconds
    .venv/bin/python benchmarks/bench_faults.py --tiny --skip-job-manager  # every loop fault, smallest loop

**The job manager** (collector-like jobs through ``JobManager`` on a real backend):

- ``status_fails_3``: the scheduler's status query fails 3 times in a row (5 are tolerated);
- ``status_fails_6``: it fails 6 times in a row, one more than tolerated (not survived: shows the limit);
- ``transient_10pct``: 10 % of the subjobs fail once (their first try exits 1), then succeed.

Per fault it prints whether the jobs survived (all done, nothing cancelled), the manual steps an operator
would need (0 when survived, else 1: a restart), the batch jobs submitted (each failed try adds one) and
the wall time against a clean run measured in the same benchmark run.

**The whole toy loop** (``loop_faults.py``; not with ``--quick``), each fault against a clean twin (the
same loop, database and settings) measured just before it: ``subjobs_fail_once_10pct``,
``database_restart_mariadb``, ``database_restart_postgres``, ``full_payload_store`` and
``full_disk_mid_run`` (the disk freed once the attempt failed; the loop resumes it by itself), and through
the real daemon ``code_server_stopped_60s``, ``daemon_killed`` and ``database_restart_daemon_mariadb``
(each against a clean daemon run). Each
line gives survived, manual steps, the attempts and collector subjob tries made (equal to the clean
twin's, plus one try per injected subjob failure and the one attempt the loop restarts after a full disk:
nothing lost, nothing done twice) and the wall time ratio. Needs root (tmpfs), MariaDB/PostgreSQL server
binaries.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import REPO, median, parser, print_ratio, ratio

sys.path.insert(0, str(REPO))

from b2cal_assets.backends.base import BackendError, BatchBackend, JobSpec, JobState
from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.backends.manager import JobManager, JobsCancelled, RetryPolicy, SubmitPolicy


class FlakyStatus(BatchBackend):
    """A real backend whose status query fails ``failures`` times in a row after its first answer."""

    def __init__(self, inner: BatchBackend, failures: int) -> None:
        self.inner, self.failures, self.name = inner, failures, inner.name
        self.polls = 0
        self.submitted = 0

    def submit(self, jobs):
        self.submitted += len(jobs)
        return self.inner.submit(jobs)

    def poll(self, handles):
        self.polls += 1
        if 2 <= self.polls < 2 + self.failures:
            raise BackendError(f"squeue: error: slurm_load_jobs error: Socket timed out (query {self.polls})")
        return self.inner.poll(handles)

    def cancel(self, handles):
        return self.inner.cancel(handles)


@dataclass
class Outcome:
    survived: bool
    submitted: int
    wall_s: float


def make_specs(root: Path, n: int, seconds: float, transient_every: int = 0) -> list[JobSpec]:
    specs = []
    for i in range(n):
        workdir = root / f"job{i}"
        workdir.mkdir(parents=True)
        script = f"sleep {seconds}"
        if transient_every and i % transient_every == 0:  # fails on its first try only
            script = f"if [ ! -e {workdir}/tried ]; then touch {workdir}/tried; exit 1; fi; {script}"
        specs.append(JobSpec(f"job{i}", ("bash", "-c", script), workdir))
    return specs


def run_once(
    make_backend: Callable[[], BatchBackend], specs: list[JobSpec], failures: int, poll_s: float
) -> Outcome:
    backend = FlakyStatus(make_backend(), failures)
    manager = JobManager(
        backend,
        submit=SubmitPolicy(poll_interval_s=poll_s, poll_backoff_max_s=4 * poll_s, forgotten_grace_s=60),
        retry=RetryPolicy(max_retries=2, retry_delay_s=poll_s),
    )
    start = time.perf_counter()
    try:
        results = manager.run(specs)
        survived = all(r.state == JobState.DONE for r in results)
    except JobsCancelled:
        survived = False
    return Outcome(survived, backend.submitted, time.perf_counter() - start)


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--slurm", action="store_true", help="run on the Slurm of .ci/services/slurm.sh")
    p.add_argument("--repeats", type=int, default=None, help="runs per fault (default 3, quick 1)")
    p.add_argument("--only", default="", help="comma-separated fault names of the loop part (default all)")
    p.add_argument("--skip-job-manager", action="store_true", help="only the loop part")
    p.add_argument(
        "--tiny", action="store_true", help="the loop part at its smallest size (the test suite runs it so)"
    )
    args = p.parse_args()
    code = 0 if args.skip_job_manager else job_manager_matrix(args)
    if not args.quick:
        code = max(code, loop_matrix([n for n in args.only.split(",") if n], tiny=args.tiny))
    return code


def loop_matrix(only: list[str], *, tiny: bool = False) -> int:
    """The whole loop's faults, each after its clean twin; 1 if one was not survived. ``tiny``: each
    loop as small as its fault allows (the figures are then not the README's)."""
    from loop_faults import DAEMON_FAULTS, IN_PROCESS, in_process, through_daemon

    daemon_faults = DAEMON_FAULTS
    names = [n for n in (*IN_PROCESS, *daemon_faults) if not only or n in only]
    unknown = sorted(set(only) - set(IN_PROCESS) - set(daemon_faults))
    if unknown:
        print(f"unknown faults: {', '.join(unknown)}; known: {', '.join((*IN_PROCESS, *daemon_faults))}")
        return 2
    code = 0
    for name in names:  # each right after its clean twin: the machine's load drifts over minutes
        if name in IN_PROCESS:
            clean, fault = in_process(name, inject=False, tiny=tiny), in_process(name, inject=True, tiny=tiny)
        else:
            mariadb = name.endswith("_mariadb")
            clean, fault = through_daemon("clean", mariadb=mariadb), through_daemon(name, mariadb=mariadb)
        expected = clean.attempts + fault.extra_attempts + (1 if fault.manual_steps else 0)
        survived = fault.survived and fault.attempts == expected
        print(
            f"FAULT {name}: survived {'yes' if survived else 'no'}, manual steps {fault.manual_steps}, "
            f"attempts {fault.attempts} (clean {clean.attempts}), subjob tries {fault.subjob_tries} "
            f"(clean {clean.subjob_tries}), wall {fault.wall_s:.1f} s vs clean {clean.wall_s:.1f} s"
            + (f"; {fault.note}" if fault.note else ""),
            flush=True,
        )
        print_ratio(f"{name}_wall", f"{name}_clean_wall", ratio(fault.wall_s, clean.wall_s), 1)
        code = max(code, 0 if survived and clean.survived else 1)
    return code


def job_manager_matrix(args) -> int:
    repeats = args.repeats or (1 if args.quick else 3)
    n, seconds, poll_s = (10, 0.1, 0.1) if args.quick else (20, 0.5, 0.5)
    if args.slurm:
        from bench_batch import slurm_env

        from b2cal_assets.backends.commands import SubprocessRunner
        from b2cal_assets.backends.slurm import SlurmBackend

        env = slurm_env(os.environ.get("B2CAL_SERVICES_DIR", "/tmp/b2cal-services"))

        def make_backend() -> BatchBackend:
            return SlurmBackend(runner=SubprocessRunner(env=env))
    else:

        def make_backend() -> BatchBackend:
            return LocalBackend(max_processes=4)

    faults = {
        "clean": (0, 0),
        "status_fails_3": (3, 0),
        "status_fails_6": (6, 0),
        "transient_10pct": (0, 10),
    }
    outcomes: dict[str, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="b2cal-bench-faults-") as tmp:
        for repeat in range(repeats):
            for name, (failures, transient_every) in faults.items():
                root = Path(tmp) / f"{name}-{repeat}"
                specs = make_specs(root, n, seconds, transient_every)
                outcomes.setdefault(name, []).append(run_once(make_backend, specs, failures, poll_s))
    clean = median([o.wall_s for o in outcomes["clean"]])
    backend_name = "slurm" if args.slurm else "local"
    print(f"{n} jobs of {seconds} s on {backend_name}, poll every {poll_s} s, {repeats} run(s) per fault")
    for name in faults:
        if name == "clean":
            continue
        runs = outcomes[name]
        survived = all(o.survived for o in runs)
        wall = median([o.wall_s for o in runs])
        print(
            f"FAULT {name}: survived {'yes' if survived else 'no'}, manual steps {0 if survived else 1}, "
            f"batch jobs submitted {max(o.submitted for o in runs)} for {n} jobs, "
            f"wall {wall:.2f} s vs clean {clean:.2f} s"
        )
        print_ratio(f"{name}_wall", "clean_wall", ratio(wall, clean), len(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
