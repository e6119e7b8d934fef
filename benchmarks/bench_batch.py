"""Submitting and tracking many short subjobs on the real Slurm of ``.ci/services/slurm.sh``.

    .venv/bin/python benchmarks/bench_batch.py           # about two minutes: 1,000 subjobs
    .venv/bin/python benchmarks/bench_batch.py --full    # 10,000 subjobs (much longer)

Three measurements, all through ``SlurmBackend`` and a counting command runner:

1. arrays: N subjobs as job arrays; submit time, time until all finished, ``squeue`` calls.
2. one ``sbatch`` per subjob for a smaller N, printed per subjob and as ratios to the array mode.
3. the tracker's cost per poll cycle (one ``squeue``) as the number of tracked jobs grows, with
   held jobs so nothing runs; printed as ratios to the smallest size of the same run.

Times depend on the machine (2 shared cores here); compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from b2cal_assets.backends.base import JobSpec  # noqa: E402
from b2cal_assets.backends.commands import CommandResult, SubprocessRunner  # noqa: E402
from b2cal_assets.backends.slurm import SlurmBackend, SlurmOptions  # noqa: E402


class Counting:
    def __init__(self, inner):
        self.inner = inner
        self.counts: dict[str, int] = {}

    def __call__(self, argv, *, stdin=None) -> CommandResult:
        self.counts[argv[0]] = self.counts.get(argv[0], 0) + 1
        return self.inner(argv, stdin=stdin)


def slurm_env(state_dir: str) -> dict[str, str]:
    conf = os.environ.get("SLURM_CONF") or str(Path(state_dir) / "slurm" / "slurm.conf")
    ping = subprocess.run(
        ["scontrol", "ping"], env={**os.environ, "SLURM_CONF": conf}, capture_output=True, text=True
    )
    if "is UP" not in ping.stdout:
        proc = subprocess.run(
            ["bash", str(REPO / ".ci" / "services" / "slurm.sh"), state_dir], capture_output=True, text=True
        )
        if proc.returncode != 0:
            sys.exit(f"Slurm is not running and .ci/services/slurm.sh failed:\n{proc.stderr}")
        conf = proc.stdout.strip().split("=", 1)[1]
    return {"SLURM_CONF": conf}


def make_specs(root: Path, n: int, tag: str) -> list[JobSpec]:
    specs = []
    for i in range(n):
        workdir = root / tag / f"j{i:05d}"
        workdir.mkdir(parents=True)
        specs.append(JobSpec(f"{tag}{i}", ("true",), workdir))
    return specs


def run_and_track(backend: SlurmBackend, specs: list[JobSpec], poll_s: float) -> dict[str, float]:
    t0 = time.perf_counter()
    handles = backend.submit(specs)
    t_submit = time.perf_counter() - t0
    cycles, poll_times = 0, []
    while True:
        tp = time.perf_counter()
        statuses = backend.poll(handles)
        poll_times.append(time.perf_counter() - tp)
        cycles += 1
        if len(statuses) == len(handles) and all(s.state.finished for s in statuses.values()):
            break
        time.sleep(poll_s)
    t_total = time.perf_counter() - t0
    failed = sum(1 for s in statuses.values() if s.state.value != "done")
    return {
        "submit_s": t_submit,
        "total_s": t_total,
        "cycles": cycles,
        "poll_median_s": statistics.median(poll_times),
        "failed": failed,
    }


def tracker_cost(env: dict[str, str], root: Path, sizes: list[int], repeats: int) -> list[tuple[int, float]]:
    """Median time of one poll over ``size`` held jobs (one squeue), for each size."""
    out = []
    for size in sizes:
        runner = SubprocessRunner(env=env)
        backend = SlurmBackend(
            options=SlurmOptions(extra_lines=("#SBATCH --hold",)), runner=runner, max_array_size=10000
        )
        handles = backend.submit(make_specs(root, size, f"held{size}_"))
        try:
            backend.poll(handles)  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                statuses = backend.poll(handles)
                times.append(time.perf_counter() - t0)
            assert len(statuses) == size, f"tracked {len(statuses)} of {size} held jobs"
            out.append((size, statistics.median(times)))
        finally:
            backend.cancel(handles)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="10,000 subjobs instead of 1,000")
    parser.add_argument("--jobs", type=int, help="subjobs in the array run (default 1000, --full 10000)")
    parser.add_argument("--per-job", type=int, help="subjobs in the one-sbatch-each run (default 100)")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--state-dir", default=os.environ.get("B2CAL_SERVICES_DIR", "/tmp/b2cal-services"))
    args = parser.parse_args()
    n_array = args.jobs or (10_000 if args.full else 1_000)
    n_single = args.per_job or (300 if args.full else 100)
    sizes = [100, 1_000, 10_000] if args.full else [100, 1_000, 3_000]

    env = slurm_env(args.state_dir)
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        root = Path(tmp)
        print(f"Slurm: {env['SLURM_CONF']}")

        runner = Counting(SubprocessRunner(env=env))
        arrays = run_and_track(
            SlurmBackend(runner=runner, max_array_size=10_000),
            make_specs(root, n_array, "a"),
            args.poll_interval,
        )
        array_counts = dict(runner.counts)
        print(f"\n1. {n_array} subjobs as job arrays")
        print(
            f"   submit {arrays['submit_s']:.2f} s ({array_counts.get('sbatch', 0)} sbatch), "
            f"all finished after {arrays['total_s']:.1f} s ({n_array / arrays['total_s']:.1f} subjobs/s), "
            f"{arrays['cycles']} poll cycles = {array_counts.get('squeue', 0)} squeue calls, "
            f"median poll {arrays['poll_median_s'] * 1000:.1f} ms, {arrays['failed']} not done"
        )

        runner = Counting(SubprocessRunner(env=env))
        single = run_and_track(
            SlurmBackend(runner=runner, use_arrays=False), make_specs(root, n_single, "s"), args.poll_interval
        )
        print(f"\n2. {n_single} subjobs with one sbatch each")
        print(
            f"   submit {single['submit_s']:.2f} s ({runner.counts.get('sbatch', 0)} sbatch), "
            f"all finished after {single['total_s']:.1f} s, {single['cycles']} poll cycles = "
            f"{runner.counts.get('squeue', 0)} squeue calls, {single['failed']} not done"
        )
        per_job_submit = single["submit_s"] / n_single
        per_array_submit = arrays["submit_s"] / n_array
        per_job_total = single["total_s"] / n_single
        per_array_total = arrays["total_s"] / n_array
        print(
            f"   per subjob: submit {per_job_submit * 1000:.2f} ms vs {per_array_submit * 1000:.2f} ms in arrays "
            f"(x{per_job_submit / per_array_submit:.1f}); submit-to-finished {per_job_total * 1000:.1f} ms vs "
            f"{per_array_total * 1000:.1f} ms (x{per_job_total / per_array_total:.2f})"
        )

        print("\n3. tracker cost per poll cycle (held jobs, median of 5 polls, one squeue each)")
        costs = tracker_cost(env, root, sizes, repeats=5)
        base_size, base_time = costs[0]
        for size, seconds in costs:
            print(
                f"   {size:>6} jobs: {seconds * 1000:8.1f} ms per poll   "
                f"x{seconds / base_time:5.2f} time for x{size / base_size:.0f} jobs"
            )


if __name__ == "__main__":
    main()
