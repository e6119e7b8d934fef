"""Latency from an upstream sign-off to the start of a dependent calibration, through the real daemon.

    .venv/bin/python benchmarks/bench_signoff_latency.py            # 5 rounds after a warm-up
    .venv/bin/python benchmarks/bench_signoff_latency.py --quick    # 1 round, no warm-up

Two sides, each with its own Dagster home made by ``prepare_dagster_home`` (the repository's
``dagster.yaml``: queued run coordinator, 1 s dequeue interval, threaded sensors) and its own
``dagster-daemon`` started by ``start_daemon``; both daemons run for the whole benchmark:

- baseline, a minimal stock Dagster project: assets ``a -> b`` and a plain ``@dg.sensor``
  (``minimum_interval_seconds=1``) that requests ``b`` when ``a``'s latest materialisation is newer
  than ``b``'s. This process materialises ``a`` (``dg.materialize``); the hop is ``a``'s
  materialisation timestamp -> the RUN_START event of the run of ``b``.
- b2cal: the toy calibrations ``toy_a -> toy_b`` of ``b2cal_assets_tests/defs/toy_scripts`` (copied
  to a temporary scripts directory without the cDST-based ``toy_c``, so nothing else runs while a hop
  is measured) at a site with automatic sign-off and a zero-length submission window. Each round
  creates one processing; the hop is read from the calibration database with the repo functions:
  ``Signoff.at`` of ``toy_a`` -> ``Attempt.started_at`` of ``toy_b``.

Each round measures one b2cal hop, waits for toy_b's run to end, then one stock hop (and waits for
``b``'s run to end), so that drift in the shared machine's load hits both sides alike. Both hops cover
the same Dagster machinery (sensor tick, run queue, run worker process start); the b2cal hop adds its
loop sensor's bookkeeping, its heavier code location and the attempt record at the start of the step.
The per-hop breakdown (to run created, to RUN_START, to attempt start) shows where the time goes.

Output: the hops per side, their medians and
``RATIO signoff_to_dependent_start / stock_dagster_sensor_hop``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common import REPO, describe, median, parser, print_ratio, ratio, say

TOY_SCRIPTS = REPO / "b2cal_assets_tests" / "defs" / "toy_scripts"

STOCK_DEFS = '''\
"""A minimal stock Dagster project: a -> b, and a plain sensor that requests b when a is newer."""

import dagster as dg


@dg.asset
def a():
    return 1


@dg.asset(deps=[a])
def b():
    return 1


b_job = dg.define_asset_job("b_job", selection=["b"])


@dg.sensor(job=b_job, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def b_when_a_is_newer(context):
    latest_a = context.instance.get_latest_materialization_event(dg.AssetKey("a"))
    if latest_a is None:
        return dg.SkipReason("a was never materialised")
    latest_b = context.instance.get_latest_materialization_event(dg.AssetKey("b"))
    if latest_b is not None and latest_b.timestamp >= latest_a.timestamp:
        return dg.SkipReason("b is up to date")
    return dg.RunRequest(run_key=f"a-{latest_a.run_id}")


defs = dg.Definitions(assets=[a, b], jobs=[b_job], sensors=[b_when_a_is_newer], executor=dg.in_process_executor)
'''


QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclass
class Hop:
    """One upstream event -> dependent start, with the Dagster run in between (epoch seconds)."""

    upstream: float
    run_created: float
    run_start: float
    dependent_start: float

    @property
    def total(self) -> float:
        return self.dependent_start - self.upstream

    def breakdown(self) -> str:
        return (
            f"{self.total:6.2f} s  (to run created {self.run_created - self.upstream:5.2f}, "
            f"queue+launch to RUN_START {self.run_start - self.run_created:5.2f}, "
            f"RUN_START to start {self.dependent_start - self.run_start:5.2f})"
        )


def _epoch(value: datetime | float) -> float:
    if isinstance(value, int | float):
        return float(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the calibration DB stores naive UTC
    return value.timestamp()


def _run_times(instance, run_id: str) -> tuple[float, float] | None:
    """(created, RUN_START) of a Dagster run, or None while it has not started."""
    import dagster as dg

    record = instance.get_run_record_by_id(run_id)
    starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    if record is None or not starts:
        return None
    return _epoch(record.create_timestamp), starts[0].timestamp


def _tail(log: Path, chars: int = 1500) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def _check_daemon(daemon, log: Path) -> None:
    if daemon.poll() is not None:
        raise SystemExit(f"the Dagster daemon stopped (exit {daemon.returncode}):\n{_tail(log, 3000)}")


def _env_for(home: Path, dagster_home: Path, extra_path: Path | None = None) -> dict[str, str]:
    paths = [str(p) for p in (extra_path, REPO) if p] + [os.environ.get("PYTHONPATH", "")]
    return {
        "B2CAL_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "B2CAL_DATABASE_URL": f"sqlite:///{home / 'b2cal.db'}",
        "PYTHONPATH": os.pathsep.join(filter(None, paths)),
    }


# --- the stock Dagster sensor hop ------------------------------------------------------------


class StockSide:
    """The stock project under its own daemon; ``hop()`` materialises ``a`` and waits for ``b``'s run."""

    def __init__(self, root: Path) -> None:
        import dagster as dg

        from b2cal_assets.defs.instance import prepare_dagster_home, start_daemon

        project = root / "project"
        project.mkdir(parents=True)
        (project / "stock_defs.py").write_text(STOCK_DEFS)
        sys.path.insert(0, str(project))
        import stock_defs

        self.asset_a = stock_defs.a
        dagster_home = root / "dagster"
        prepare_dagster_home(dagster_home)
        self.log = root / "daemon.log"
        self.daemon = start_daemon(_env_for(root, dagster_home, project), self.log, module="stock_defs")
        self.instance = dg.DagsterInstance.from_config(str(dagster_home))

    def _b_runs(self) -> list:
        import dagster as dg

        return self.instance.get_runs(filters=dg.RunsFilter(job_name="b_job"))

    def hop(self, label: str, timeout_s: float) -> Hop | None:
        import dagster as dg

        seen = {r.run_id for r in self._b_runs()}
        dg.materialize([self.asset_a], instance=self.instance, run_config=QUIET)
        upstream = self.instance.get_latest_materialization_event(dg.AssetKey("a")).timestamp
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            _check_daemon(self.daemon, self.log)
            runs = [r for r in self._b_runs() if r.run_id not in seen]
            if runs and runs[0].is_finished:  # wait for the end: the next measurement runs alone
                times = _run_times(self.instance, runs[0].run_id)
                if times:
                    hop = Hop(upstream, times[0], times[1], times[1])
                    say(f"  stock {label}: {hop.breakdown()}")
                    return hop
                break
            time.sleep(0.2)
        say(
            f"  stock {label}: no run of b within {timeout_s:.0f} s (left out); daemon log:\n{_tail(self.log)}"
        )
        return None

    def close(self) -> None:
        from b2cal_assets.defs.instance import stop_daemon

        self.instance.dispose()
        stop_daemon(self.daemon)


# --- the b2cal sign-off -> dependent hop ----------------------------------------------------


def _toy_scripts(target: Path) -> Path:
    """toy_a and toy_b (and toy_a's validation): the sign-off hop without the cDST chain behind it."""
    (target / "validations").mkdir(parents=True)
    for name in ("toy_a.py", "toy_b.py"):
        shutil.copy(TOY_SCRIPTS / name, target / name)
    shutil.copy(TOY_SCRIPTS / "validations" / "toy_a.py", target / "validations" / "toy_a.py")
    return target


def _setup_loop(home: Path, processings: int) -> None:
    from b2cal_assets.db.engine import database_url, ensure_schema
    from b2cal_assets.domain.processing import SignoffPolicy, SiteSpec
    from b2cal_assets.loop import admin
    from b2cal_assets_tests.defs import toy

    ensure_schema(database_url())
    admin.ensure_site(
        SiteSpec(
            name="bench_site",
            backend="local",
            backend_args={},
            storage_root=str(home / "data"),
            path_prefix="",
            signoff_policy=SignoffPolicy("automatic"),
            hold_until_deadline=False,
        )
    )
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    files = toy.generate(home / "data", range(1, processings + 1), events=500)
    admin.register_files(files, site_name="bench_site")


def _create_processing(name: str, run: int) -> None:
    from b2cal_assets.domain.iov import IoV
    from b2cal_assets.domain.processing import ProcessingSpec
    from b2cal_assets.loop import admin

    admin.create_processing(
        ProcessingSpec(
            name=name,
            kind="prompt",
            site="bench_site",
            iov=IoV(1, run, 1, run),
            global_tags=("toy_base",),
            window_hours=0.0,
        ),
        created_by="bench",
    )


def _db_hop(engine, processing: str) -> tuple[str, object] | None:
    """("ok", (signoff_at, attempt_started_at, run_id)) once toy_b started; ("failed", why); or None."""
    from b2cal_assets.db.engine import session_scope
    from b2cal_assets.db.errors import NotFound
    from b2cal_assets.db.repo import attempts, signoffs

    with session_scope(engine) as s:
        try:
            upstream = attempts.latest_attempt(s, processing, "toy_a")
            signoff = signoffs.latest_signoff(s, processing, "toy_a")
            dependent = attempts.latest_attempt(s, processing, "toy_b")
        except NotFound:
            return None
        for attempt in (upstream, dependent):
            if attempt is not None and attempt.state == "failed":
                return "failed", f"{attempt.calibration}: {attempt.error[-1500:]}"
        if signoff is not None and signoff.decision != "accept":
            return "failed", f"toy_a was {signoff.decision}ed"
        if signoff is None or dependent is None or dependent.started_at is None:
            return None
        return "ok", (signoff.at, dependent.started_at, dependent.dagster_run_id)


class B2calSide:
    """The toy loop under the b2cal daemon; ``hop(name)`` creates a processing and measures its hop.

    ``launch_at_signoff`` (``B2CAL_LAUNCH_AT_SIGNOFF``): the sign-off's run queues toy_b's run itself
    (``defs/hops.py``); off, toy_b waits for the loop sensor's next tick, as before that fast hop."""

    def __init__(self, root: Path, processings: int, launch_at_signoff: bool = True) -> None:
        import dagster as dg

        from b2cal_assets.db.engine import make_engine
        from b2cal_assets.defs.instance import prepare_dagster_home, start_daemon

        home = root / "home"
        home.mkdir(parents=True)
        scripts = _toy_scripts(root / "scripts")
        dagster_home = home / "dagster"
        env = {
            **_env_for(home, dagster_home),
            "B2CAL_CALIBRATIONS_DIR": str(scripts),
            "B2CAL_CDST_PRODUCER": "b2cal_assets_tests.defs.toy:produce_cdst",
            "B2CAL_LOCAL_MAX_PROCESSES": "2",
            "B2CAL_BATCH_POLL_INTERVAL_S": "1",
            "B2CAL_LAUNCH_AT_SIGNOFF": "true" if launch_at_signoff else "false",
        }
        self.env = env
        self.label = "b2cal" if launch_at_signoff else "b2cal via sensor"
        os.environ.update(env)  # admin and the repo functions below use the same database
        _setup_loop(home, processings)
        prepare_dagster_home(dagster_home)
        self.log = home / "daemon.log"
        self.daemon = start_daemon(env, self.log)
        self.instance = dg.DagsterInstance.from_config(str(dagster_home))
        self.engine = make_engine(env["B2CAL_DATABASE_URL"])

    def _wait(self, what: str, probe, deadline: float):
        while time.monotonic() < deadline:
            _check_daemon(self.daemon, self.log)
            result = probe()
            if result is not None:
                return result
            time.sleep(0.3)
        say(f"  {self.label}: {what} did not happen in time (left out); daemon log:\n{_tail(self.log)}")
        return None

    def hop(self, run: int, timeout_s: float) -> Hop | None:
        name = f"bench_{run}"
        os.environ.update(self.env)  # admin writes to this side's database
        _create_processing(name, run=run)
        deadline = time.monotonic() + timeout_s
        result = self._wait(f"{name}: toy_b starting", lambda: _db_hop(self.engine, name), deadline)
        if result is None:
            return None
        if result[0] == "failed":
            raise SystemExit(f"{name}: a toy calibration failed, so there is no hop to measure:\n{result[1]}")
        signoff_at, started_at, run_id = result[1]
        times = self._wait(f"{name}: RUN_START of toy_b", lambda: _run_times(self.instance, run_id), deadline)
        created, run_start = times or (_epoch(started_at), _epoch(started_at))
        hop = Hop(_epoch(signoff_at), created, run_start, _epoch(started_at))
        say(f"  {self.label} {name}: {hop.breakdown()}")
        # wait for toy_b's run to end: the next measurement runs alone
        self._wait(f"{name}: the end of toy_b's run", lambda: self._run_finished(run_id), deadline)
        return hop

    def _run_finished(self, run_id: str) -> bool | None:
        run = self.instance.get_run_by_id(run_id)
        return True if run is not None and run.is_finished else None

    def close(self) -> None:
        from b2cal_assets.defs.instance import stop_daemon

        self.instance.dispose()
        self.engine.dispose()
        stop_daemon(self.daemon)


def main() -> int:
    p = parser(__doc__)
    p.add_argument(
        "--rounds", type=int, help="rounds of one stock hop and two b2cal hops (default 5, quick 1)"
    )
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one hop")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (daemon logs, databases)")
    args = p.parse_args()
    rounds = args.rounds or (1 if args.quick else 5)
    for var in ("B2CAL_DATABASE_URL", "B2CAL_CALIBRATIONS_DIR", "DAGSTER_HOME", "B2CAL_HOME"):
        os.environ.pop(var, None)  # never touch a real installation

    stock: list[Hop] = []
    ours: list[Hop] = []  # through the loop sensor's tick (B2CAL_LAUNCH_AT_SIGNOFF=false), as before
    fast: list[Hop] = []  # queued by the sign-off's own run (the default)
    with tempfile.TemporaryDirectory(prefix="bench_signoff_") as tmp:
        root = Path(args.keep).resolve() if args.keep else Path(tmp)
        say(
            "starting three daemons (stock a -> b project; b2cal toy_a -> toy_b launched at sign-off, "
            f"and through the loop sensor); {rounds} round(s) of hops"
        )
        stock_side = StockSide(root / "stock")
        try:
            fast_side = B2calSide(root / "b2cal_fast", rounds, launch_at_signoff=True)
            try:
                b2cal_side = B2calSide(root / "b2cal", rounds, launch_at_signoff=False)
                try:
                    if not args.quick:
                        stock_side.hop("warm-up (not counted)", args.timeout)
                    for i in range(1, rounds + 1):
                        # alternate, so that drift in the machine's load hits every side alike
                        fast.append(fast_side.hop(i, args.timeout))
                        ours.append(b2cal_side.hop(i, args.timeout))
                        stock.append(stock_side.hop(f"hop {i}", args.timeout))
                finally:
                    b2cal_side.close()
            finally:
                fast_side.close()
        finally:
            stock_side.close()

    stock = [h for h in stock if h is not None]
    ours = [h for h in ours if h is not None]
    fast = [h for h in fast if h is not None]
    if not stock or not ours or not fast:
        raise SystemExit("no hop measured on one of the sides; see the lines above")
    say(describe("stock a materialised -> b RUN_START", [h.total for h in stock]))
    say(describe("b2cal via sensor: toy_a signed off -> toy_b attempt started", [h.total for h in ours]))
    say(
        describe(
            "b2cal via sensor: toy_a signed off -> toy_b RUN_START", [h.run_start - h.upstream for h in ours]
        )
    )
    say(describe("b2cal at sign-off: toy_a signed off -> toy_b attempt started", [h.total for h in fast]))
    say(
        describe(
            "b2cal at sign-off: toy_a signed off -> toy_b RUN_START", [h.run_start - h.upstream for h in fast]
        )
    )
    stock_median = median([h.total for h in stock])
    samples = min(len(ours), len(stock))
    print_ratio(
        "signoff_to_dependent_start",
        "stock_dagster_sensor_hop",
        ratio(median([h.total for h in ours]), stock_median),
        samples,
        note="through the loop sensor's tick",
    )
    print_ratio(
        "signoff_to_dependent_run_start",
        "stock_dagster_sensor_hop",
        ratio(median([h.run_start - h.upstream for h in ours]), stock_median),
        samples,
        note="the Dagster part of the hop only, through the loop sensor's tick",
    )
    fast_samples = min(len(fast), len(stock))
    print_ratio(
        "automatic_site_signoff_to_dependent_start",
        "stock_dagster_sensor_hop",
        ratio(median([h.total for h in fast]), stock_median),
        fast_samples,
        note="automatic site, no window: launched by the sign-off's run, no sensor tick",
    )
    print_ratio(
        "automatic_site_signoff_to_dependent_run_start",
        "stock_dagster_sensor_hop",
        ratio(median([h.run_start - h.upstream for h in fast]), stock_median),
        fast_samples,
        note="the Dagster part of that hop only",
    )
    print_ratio(
        "automatic_site_signoff_to_dependent_run_created",
        "stock_dagster_sensor_to_run_created",
        ratio(
            median([h.run_created - h.upstream for h in fast]),
            median([h.run_created - h.upstream for h in stock]),
        ),
        fast_samples,
        note="the part the sensor tick was: upstream event -> the dependent's run exists",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
