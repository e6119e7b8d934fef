"""A real prompt loop's size on one orchestrator: what the orchestrator's own parts cost at scale.

    .venv/bin/python benchmarks/bench_scale.py            # 60 (and 500) calibrations, 3 x 2,000 runs, 200,000 files
    .venv/bin/python benchmarks/bench_scale.py --quick    # a tiny run: 12 (and 40) calibrations, 2 x 50 runs, 2,000 files
    .venv/bin/python benchmarks/bench_scale.py --only definitions sensors
    .venv/bin/python benchmarks/bench_scale.py --database-url mysql+pymysql://root@127.0.0.1/bench_scale

Generated calibration scripts in the real graph's shape (pre-tracking, alignment, post-tracking and
analysis stages; a BeamSpot-like fan-in at the start of post-tracking), processings of thousands of runs
and a catalog of hundreds of thousands of files, so that the orchestrator's own costs dominate. Each
part measures a baseline in the same run and prints RATIO lines (see benchmarks/README.md):

- ``definitions``: fresh subprocesses build and resolve the definitions of N scripts, against a stock
  ``dg.Definitions`` with the same assets (plain ``@asset`` functions, same edges, same partitions);
  the same for the large size. The issue's target: within 1.5x of the stock baseline.
- ``catalog``: registering files through the product's path (``loop.admin.register_files``) against
  a bare SQLAlchemy ``executemany`` of the same rows; the rest of the catalog is then bulk-loaded.
- ``sensors``: ticks of the data-arrival sensor (each after a batch of new files) and of the loop
  sensor, evaluated in this process as the daemon does, against a stock sensor that reads the same
  database's newest row. Median and p95; the target is p95 under 1 s with the full catalog.
- ``status``: ``b2cal status --json`` (a process) against ``b2cal --help``; the status page (the
  calibration pages' app, in this process) against its own 404 page. Target: under 1 s.
- ``size``: the calibration database's size per processing.
- ``rss``: the peak RSS of a process that loads the code location (what a run worker does), against
  a process that builds the stock definitions; then two real ``dagster-daemon`` processes side by side
  for a while (90 s, quick 20 s), each with its own temporary Dagster home: b2cal's over the scale
  database and scripts (its sensors tick over the catalog), and one over the stock definitions with a
  sensor reading the same database's newest row. The peak RSS of each daemon's process tree (the
  daemon and its code servers; runs the loop launched are left out) and of the daemon process itself.
- ``overhead``: about 20,000 collector subjobs (quick: 300) through the real ``JobManager``, one per
  calibration as the runner makes it, each calibration started as soon as the ones it depends on are
  done. The jobs (about 10 s by default, quick 0.3 s) sleep on a backend that completes them on time
  without processes (``--jobs-backend local``: real wrapper processes); the manager reads each job's
  own start and end from its ``times`` file. The loop overhead is the makespan minus the critical
  path (the longest chain through the dependency graph of each calibration's longest job); the target
  is under 5 % of the critical path.

Not yet measured here (see benchmarks/README.md): the daemon's RSS over a whole loop (runs, attempts,
days of ticks; here a short window of ticks), and in the overhead the loop sensor's and Dagster's
run launches between a sign-off and the dependent's jobs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import REPO, describe, median, parser, print_ratio, ratio, say

TAGS = ("hadron_calib", "bhabha_all_calib", "mumu_tight_or_highm_calib", "cosmic_calib")
PARTS = ("definitions", "catalog", "sensors", "status", "size", "rss", "overhead")
EXP = 30

SCRIPT = """\
from prompt import CalibrationSettings
{imports}

settings = CalibrationSettings(
    name="{name}",
    expert_username="expert_{expert}",
    subsystem="{subsystem}",
    description="Generated calibration {index} ({stage}) for the scale benchmark",
    input_data_formats=["{data_format}"],
    input_data_names=["{tag}"],
    input_data_filters={{"{tag}": []}},
    depends_on=[{depends}],
    expert_config={{"max_files_per_run": 2, "threshold": {index}.5}},
    produced_payloads=["Payload{index}"],
)


def get_calibrations(input_data, **kwargs):
    return []
"""


@dataclass(frozen=True)
class Shape:
    """One generated calibration: its stage decides its input format and whom it may depend on."""

    name: str
    stage: str
    depends: tuple[str, ...]


def graph_shape(n: int, seed: int) -> list[Shape]:
    """The real loop's proportions: 40 % pre-tracking, 10 % alignment, 35 % post-tracking, 15 % analysis.

    Each depends on up to 3 earlier ones of the same or an earlier stage; the first post-tracking one
    depends on every alignment and up to 8 pre-tracking ones (the BeamSpot-like fan-in).
    """
    rng = random.Random(seed)
    bounds = [("pre_tracking", 0.40), ("alignment", 0.50), ("post_tracking", 0.85), ("analysis", 1.0)]
    shapes: list[Shape] = []
    for i in range(n):
        stage = next(s for s, upper in bounds if i < max(1, round(upper * n)) or s == "analysis")
        name = f"cal_{i:04d}"
        earlier = [s.name for s in shapes]
        if stage == "pre_tracking":
            pool = earlier
        else:
            pool = [s.name for s in shapes if s.stage != "analysis" or stage == "analysis"]
        if stage == "post_tracking" and not any(s.stage == "post_tracking" for s in shapes):
            alignment = [s.name for s in shapes if s.stage == "alignment"]
            pre = [s.name for s in shapes if s.stage == "pre_tracking"]
            deps = sorted(set(alignment) | set(rng.sample(pre, k=min(8, len(pre)))))
        elif stage == "alignment" and not any(s.stage == "alignment" for s in shapes):
            deps = []
        else:
            deps = sorted(rng.sample(pool, k=min(len(pool), rng.randint(0, 3))))
        shapes.append(Shape(name, stage, tuple(deps)))
    return shapes


FORMATS = {"pre_tracking": "raw", "alignment": "raw", "post_tracking": "cdst", "analysis": "mdst"}


def write_scripts(directory: Path, shapes: Sequence[Shape]) -> int:
    """The scripts of ``shapes`` in the framework's form; returns the number of dependency edges."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, shape in enumerate(shapes):
        imports = "\n".join(f"from prompt.calibrations.{d} import settings as {d}" for d in shape.depends)
        text = SCRIPT.format(
            imports=imports,
            name=shape.name,
            index=i,
            expert=i % 20,
            stage=shape.stage,
            subsystem="alignment" if shape.stage == "alignment" else ("cdc", "ecl", "top", "klm", "svd")[i % 5],
            data_format=FORMATS[shape.stage],
            tag=TAGS[i % len(TAGS)],
            depends=", ".join(shape.depends),
        )
        (directory / f"{shape.name}.py").write_text(text)
    return sum(len(s.depends) for s in shapes)


STOCK = """
import dagster as dg

PARTITIONS = dg.DynamicPartitionsDefinition(name="processing")
SHAPES = {shapes!r}
TAGS = {tags!r}


def _make(name, deps, group):
    @dg.asset(name=name, deps=deps, partitions_def=PARTITIONS, group_name=group)
    def _asset(context):
        return None

    return _asset


def build():
    assets = [_make("skim_" + t, [], "data") for t in TAGS]
    for i, (name, stage, depends) in enumerate(SHAPES):
        inputs = ["skim_" + TAGS[i % len(TAGS)]] + ["signoff_" + d for d in depends]
        assets.append(_make("payloads_" + name, inputs, stage))
        assets.append(_make("signoff_" + name, ["payloads_" + name], stage))
    return dg.Definitions(assets=assets)
"""

CHILD = """
import json, sys, time


def peak_rss_mb():
    # VmHWM is this process's own peak; ru_maxrss would keep the forking parent's peak across exec
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status")


t0 = time.perf_counter()
import dagster as dg
t1 = time.perf_counter()
kind, target = sys.argv[1], sys.argv[2]
if kind == "b2cal":
    from b2cal_assets.defs.definitions import build_definitions
    build = lambda: build_definitions(target)
else:
    sys.path.insert(0, target)
    from stock_defs import build
t2 = time.perf_counter()
defs = build()
graph = defs.resolve_asset_graph()
t3 = time.perf_counter()
print(json.dumps({"import_dagster_s": t1 - t0, "import_s": t2 - t1, "build_s": t3 - t2,
                  "assets": len(list(graph.get_all_asset_keys())),
                  "rss_mb": peak_rss_mb()}))
"""


@dataclass
class Bench:
    """What the parts share: sizes, the temporary home and the figures gathered for the summary."""

    root: Path
    calibrations: int
    large: int
    processings: int
    runs: int
    files: int
    repeats: int
    ticks: int
    database_url: str
    subjobs: int = 300
    job_seconds: float = 0.3
    jobs_backend: str = "instant"
    jobs_dir: Path | None = None
    scripts_dir: Path = field(init=False)
    shapes: list[Shape] = field(init=False)

    def __post_init__(self) -> None:
        self.scripts_dir = self.root / "scripts"
        self.shapes = graph_shape(self.calibrations, seed=self.calibrations)

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "B2CAL_HOME": str(self.root / "home"),
            "DAGSTER_HOME": str(self.root / "home" / "dagster"),
            "B2CAL_CALIBRATIONS_DIR": str(self.scripts_dir),
            "B2CAL_DATABASE_URL": self.database_url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        return env


def p95(values: Sequence[float]) -> float:
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return math.nan
    return finite[min(len(finite) - 1, math.ceil(0.95 * len(finite)) - 1)]


def _child(kind: str, target: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, target], env=env, capture_output=True, text=True, cwd=REPO
    )
    if proc.returncode != 0:
        raise SystemExit(f"loading the {kind} definitions failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def part_definitions(b: Bench) -> None:
    """b2cal's definitions against stock ones with the same assets, at both sizes."""
    env = b.env()
    env.pop("B2CAL_CALIBRATIONS_DIR")
    rss: dict[str, list[float]] = {"b2cal": [], "stock": []}
    for n in (b.calibrations, b.large):
        shapes = graph_shape(n, seed=n)
        b2cal_dir = b.root / f"defs_{n}" / "scripts"
        edges = write_scripts(b2cal_dir, shapes)
        stock_dir = b.root / f"defs_{n}" / "stock"
        stock_dir.mkdir(parents=True)
        rows = [(s.name, s.stage, list(s.depends)) for s in shapes]
        (stock_dir / "stock_defs.py").write_text(STOCK.format(shapes=rows, tags=list(TAGS)))
        say(f"definitions: {n} generated scripts, {edges} edges")
        samples: dict[str, list[float]] = {"b2cal": [], "stock": []}
        assets: dict[str, int] = {}
        for r in range(b.repeats):
            for kind, target in (("stock", stock_dir), ("b2cal", b2cal_dir)):
                result = _child(kind, str(target), env)
                samples[kind].append(result["build_s"])
                assets[kind] = result["assets"]
                if n == b.calibrations:
                    rss[kind].append(result["rss_mb"])
                say(f"  repeat {r + 1}: {kind:5s} {result['build_s']:.3f} s, {result['assets']} assets")
        if assets["b2cal"] < 2 * n:
            raise SystemExit(f"only {assets['b2cal']} assets for {n} scripts: did some scripts fail to load?")
        say(describe(f"  stock dg.Definitions, {assets['stock']} assets", samples["stock"]))
        say(describe(f"  b2cal definitions, {assets['b2cal']} assets", samples["b2cal"]))
        say(f"  b2cal per calibration: {median(samples['b2cal']) / n * 1000:.2f} ms")
        print_ratio(
            f"definitions_load_{n}_calibrations",
            "stock_definitions_same_assets",
            ratio(median(samples["b2cal"]), median(samples["stock"])),
            b.repeats,
            note="target 1.5",
        )
    b.rss_samples = rss  # type: ignore[attr-defined]


# --- the calibration database at scale --------------------------------------------------------------


@dataclass(frozen=True)
class FileRow:
    """What ``loop.admin.register_files`` reads of a generated or transferred file."""

    path: str
    data_tag: str
    exp: int
    run: int
    n_events: int
    size_bytes: int
    data_format: str = "raw"
    run_info: dict[str, Any] = field(default_factory=dict)


def _file_rows(start: int, count: int, runs: int) -> list[FileRow]:
    """Files ``start`` .. ``start + count``: spread over the processings' runs, tags round robin."""
    return [
        FileRow(
            path=f"/storage/raw/e{EXP:04d}/r{1 + i % runs:05d}/{TAGS[i % len(TAGS)]}/f{i:07d}.root",
            data_tag=TAGS[i % len(TAGS)],
            exp=EXP,
            run=1 + i % runs,
            n_events=1000,
            size_bytes=50_000_000,
        )
        for i in range(start, start + count)
    ]


def _setup_database(b: Bench) -> None:
    from b2cal_assets.db.engine import ensure_schema
    from b2cal_assets.domain.iov import IoV
    from b2cal_assets.domain.processing import ProcessingSpec, SignoffPolicy, SiteSpec
    from b2cal_assets.loop import admin

    os.environ.update({k: v for k, v in b.env().items() if k.startswith(("B2CAL_", "DAGSTER_"))})
    (b.root / "home" / "dagster").mkdir(parents=True, exist_ok=True)
    write_scripts(b.scripts_dir, b.shapes)
    ensure_schema(b.database_url)
    admin.ensure_site(
        SiteSpec(
            name="scale_site",
            backend="local",
            backend_args={},
            storage_root="/storage",
            path_prefix="",
            signoff_policy=SignoffPolicy("automatic"),
            hold_until_deadline=False,
        ),
        url=b.database_url,
    )
    per = b.runs // b.processings
    for k in range(b.processings):
        admin.create_processing(
            ProcessingSpec(
                name=f"scale_p{k + 1}",
                kind="prompt",
                site="scale_site",
                iov=IoV(EXP, 1 + k * per, EXP, (k + 1) * per),
                global_tags=(),
                window_hours=24.0,
            ),
            created_by="bench",
            url=b.database_url,
        )


def _bulk_insert(url: str, rows: Sequence[FileRow]) -> None:
    """The catalog rows of ``rows`` in one bare ``executemany`` (runs must exist): setup and baseline."""
    from sqlalchemy import insert, select

    from b2cal_assets.db.engine import make_engine, session_scope
    from b2cal_assets.db.models import CatalogFile, Run

    engine = make_engine(url)
    with session_scope(engine) as s:
        run_ids = {(e, r): i for i, e, r in s.execute(select(Run.id, Run.exp, Run.run)).all()}
        s.execute(
            insert(CatalogFile),
            [
                {
                    "run_id": run_ids[(f.exp, f.run)],
                    "data_tag": f.data_tag,
                    "data_format": f.data_format,
                    "path": f.path,
                    "n_events": f.n_events,
                    "size_bytes": f.size_bytes,
                }
                for f in rows
            ],
        )


def _ensure_runs(url: str, runs: int) -> None:
    from sqlalchemy import insert, select

    from b2cal_assets.db.engine import make_engine, session_scope
    from b2cal_assets.db.models import Run

    with session_scope(make_engine(url)) as s:
        have = {r for (r,) in s.execute(select(Run.run).where(Run.exp == EXP)).all()}
        new = [{"exp": EXP, "run": r} for r in range(1, runs + 1) if r not in have]
        if new:
            s.execute(insert(Run), new)


def part_catalog(b: Bench) -> int:
    """Registration through the product against a bare insert; then the rest bulk-loaded. Returns next id."""
    from b2cal_assets.loop import admin

    sample = min(2000, b.files // 4)
    _ensure_runs(b.database_url, b.runs)
    product: list[float] = []
    bare: list[float] = []
    offset = 0
    for _ in range(b.repeats):
        rows = _file_rows(offset, sample, b.runs)
        start = time.perf_counter()
        new = admin.register_files(rows, url=b.database_url)
        product.append(time.perf_counter() - start)
        if new != sample:
            raise SystemExit(f"register_files registered {new} of {sample} new files")
        offset += sample
        rows = _file_rows(offset, sample, b.runs)
        start = time.perf_counter()
        _bulk_insert(b.database_url, rows)
        bare.append(time.perf_counter() - start)
        offset += sample
    say(describe(f"catalog: register_files, {sample} files", product))
    say(describe(f"catalog: bare executemany, {sample} files", bare))
    say(f"catalog: register_files {sample / median(product):.0f} files/s")
    print_ratio("register_files_time", "bare_executemany_time", ratio(median(product), median(bare)), b.repeats)
    rest = b.files - offset
    start = time.perf_counter()
    chunk = 20_000
    for first in range(offset, b.files, chunk):
        _bulk_insert(b.database_url, _file_rows(first, min(chunk, b.files - first), b.runs))
    say(f"catalog: {rest} more files bulk-loaded in {time.perf_counter() - start:.1f} s ({b.files} in all)")
    return b.files


# --- sensor ticks -----------------------------------------------------------------------------------


def _timed_ticks(evaluate: Callable[[], Any], ticks: int, before: Callable[[int], None] | None = None) -> list[float]:
    times = []
    for i in range(ticks):
        if before is not None:
            before(i)
        start = time.perf_counter()
        evaluate()
        times.append(time.perf_counter() - start)
    return times


def part_sensors(b: Bench, next_file: int) -> None:
    """Ticks of the data-arrival and loop sensors against a stock sensor reading the newest row."""
    import dagster as dg
    from sqlalchemy import func, select

    from b2cal_assets.db.engine import make_engine, session_scope
    from b2cal_assets.db.models import CatalogFile
    from b2cal_assets.defs.resources import CalibrationLoopResource
    from b2cal_assets.defs.sensors import calibration_loop_sensor, data_arrival_sensor

    engine = make_engine(b.database_url)
    logging.getLogger("dagster").setLevel(logging.WARNING)  # the loop sensor's per-window lines

    @dg.sensor(name="stock_sensor", minimum_interval_seconds=1)
    def stock_sensor(context):
        with session_scope(engine, readonly=True) as s:
            newest = s.scalar(select(func.max(CatalogFile.id)))
        return dg.SensorResult(cursor=str(newest))

    resource = CalibrationLoopResource(database_url=b.database_url, calibrations_dir=str(b.scripts_dir))
    batch = 500
    state = {"next": next_file, "cursor": None}
    with dg.instance_for_test() as instance:

        def add_files(_i: int) -> None:
            _bulk_insert(b.database_url, _file_rows(state["next"], batch, b.runs))
            state["next"] += batch

        def arrival() -> None:
            context = dg.build_sensor_context(instance=instance, cursor=state["cursor"], resources={"loop": resource})
            result = data_arrival_sensor(context)
            state["cursor"] = result.cursor
            for request in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))

        def stock() -> None:
            stock_sensor(dg.build_sensor_context(instance=instance))

        def loop() -> None:
            calibration_loop_sensor(dg.build_sensor_context(instance=instance, resources={"loop": resource}))

        start = time.perf_counter()
        arrival()  # the first tick reports the whole catalog of every processing once
        first = time.perf_counter() - start
        say(f"sensors: first data-arrival tick over {state['next']} files, {b.processings} processings: {first:.3f} s")
        baseline = _timed_ticks(stock, b.ticks)
        arrivals = _timed_ticks(arrival, b.ticks, before=add_files)
        loops = _timed_ticks(loop, b.ticks)
        baseline += _timed_ticks(stock, b.ticks)
    say(describe("sensors: stock sensor tick", baseline))
    say(describe(f"sensors: data-arrival tick (+{batch} files each)", arrivals))
    say(describe(f"sensors: loop tick ({b.processings} processings x {b.calibrations} calibrations)", loops))
    for name, values in (("data_arrival", arrivals), ("loop", loops)):
        say(f"sensors: {name} tick p95 {p95(values):.3f} s (target under 1 s)")
        print_ratio(f"{name}_sensor_tick", "stock_sensor_tick", ratio(median(values), median(baseline)), len(values))
        print_ratio(f"{name}_sensor_tick_p95", "stock_sensor_tick_p95", ratio(p95(values), p95(baseline)), len(values))


# --- status views -----------------------------------------------------------------------------------


def part_status(b: Bench) -> None:
    """``b2cal status --json`` and the status page, each against the cheapest answer of the same program."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.testclient import TestClient

    from b2cal_assets.loop.factory import loop_service
    from b2cal_assets.web.app import NoAuthUserMiddleware, no_auth_user
    from b2cal_assets.web.calibration_html import STATUS_PATH
    from b2cal_assets.web.calibration_pages import CalibrationPages
    from b2cal_assets.web.config import SessionSettings
    from b2cal_assets.web.sessions import SessionCodec

    b2cal = str(Path(sys.executable).with_name("b2cal"))
    env = b.env()
    cli: dict[str, list[float]] = {"status": [], "help": []}
    for _ in range(b.repeats):
        for kind, argv in (("help", [b2cal, "--help"]), ("status", [b2cal, "status", "--json"])):
            start = time.perf_counter()
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=b.root)
            cli[kind].append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(argv[1:])} failed:\n{proc.stderr[-2000:]}")
            if kind == "status":
                json.loads(proc.stdout)
    say(describe("status: b2cal --help", cli["help"]))
    say(describe("status: b2cal status --json", cli["status"]))
    print_ratio("b2cal_status_json", "b2cal_help", ratio(median(cli["status"]), median(cli["help"])), b.repeats)

    service = loop_service(b.database_url, str(b.scripts_dir))
    codec = SessionCodec("bench-secret-key-0123456789-abcdefghijklmnop", SessionSettings())
    pages = CalibrationPages(lambda: service, codec)
    app = Starlette(routes=pages.routes(), middleware=[Middleware(NoAuthUserMiddleware, user=no_auth_user())])
    page: dict[str, list[float]] = {"status": [], "missing": []}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for _ in range(max(3, b.repeats)):
            for kind, path in (("missing", "/no-such-page"), ("status", STATUS_PATH)):
                start = time.perf_counter()
                response = client.get(path)
                page[kind].append(time.perf_counter() - start)
                if kind == "status" and response.status_code != 200:
                    raise SystemExit(f"the status page answered {response.status_code}: {response.text[:500]}")
    say(describe("status: 404 page", page["missing"]))
    say(describe("status: status page", page["status"]))
    say(f"status: page median {median(page['status']):.3f} s (target under 1 s)")
    print_ratio("status_page", "not_found_page", ratio(median(page["status"]), median(page["missing"])), len(page["status"]))


def part_size(b: Bench) -> None:
    from sqlalchemy import text

    from b2cal_assets.db.connection import dialect_name, sqlite_path
    from b2cal_assets.db.engine import make_engine

    path = sqlite_path(b.database_url)
    if path is not None:
        total = path.stat().st_size
    else:
        engine = make_engine(b.database_url)
        with engine.connect() as conn:
            if dialect_name(b.database_url) == "postgresql":
                total = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0)
            else:
                total = int(
                    conn.execute(
                        text(
                            "SELECT SUM(data_length + index_length) FROM information_schema.tables "
                            "WHERE table_schema = DATABASE()"
                        )
                    ).scalar()
                    or 0
                )
    say(f"size: calibration database {total / 1e6:.1f} MB with {b.files} catalog files")
    say(f"size: {total / 1e6 / b.processings:.1f} MB per processing ({b.processings} processings)")


STOCK_DAEMON = """
import dagster as dg
import sqlalchemy as sa

from stock_defs import build

ENGINE = sa.create_engine({url!r})


@dg.sensor(name="stock_sensor", minimum_interval_seconds=2, default_status=dg.DefaultSensorStatus.RUNNING)
def stock_sensor(context):
    with ENGINE.connect() as conn:
        newest = conn.execute(sa.text("SELECT MAX(id) FROM {table}")).scalar()
    return dg.SensorResult(cursor=str(newest))


defs = dg.Definitions.merge(build(), dg.Definitions(sensors=[stock_sensor]))
"""

RUN_WORKER = ("execute_run", "execute_step", "resume_run")  # launched runs: not the daemon's own memory


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _process_tree(root: int) -> dict[int, str]:
    """``root`` and its descendants (code servers, run workers) by pid, with their command lines."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree = {root}
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree and pid not in tree}
        tree |= more
        grew = bool(more)
    return {pid: commands.get(pid, "") for pid in tree if pid in commands}


@dataclass
class DaemonMemory:
    """Peaks of one daemon's process tree (the daemon and its code servers; launched runs apart)."""

    tree_peak_mb: float = 0.0  # the largest sum of VmRSS over one sample
    daemon_hwm_mb: float = 0.0  # the dagster-daemon process's own VmHWM
    run_workers: set[int] = field(default_factory=set)

    def sample(self, root: int) -> None:
        total = 0
        for pid, command in _process_tree(root).items():
            if any(word in command for word in RUN_WORKER):
                self.run_workers.add(pid)
                continue
            total += _status_kb(pid, "VmRSS")
        self.tree_peak_mb = max(self.tree_peak_mb, total / 1024)
        self.daemon_hwm_mb = max(self.daemon_hwm_mb, _status_kb(root, "VmHWM") / 1024)


def _sensor_ticks(dagster_home: Path) -> int:
    """Sensor ticks the daemon recorded in its instance (0 when the storage cannot tell)."""
    import dagster as dg
    from dagster._core.definitions.run_request import InstigatorType  # not exported at the top level

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        return sum(
            len(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10_000))
            for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        )
    except Exception as exc:  # the count only decides how long to wait: say why it is missing
        say(f"rss: no tick count from {dagster_home}: {exc}")
        return 0
    finally:
        instance.dispose()


def _ensure_scale_database(b: Bench) -> None:
    """The scale database with its catalog, unless the other parts made it already (``--only rss``)."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from b2cal_assets.db.engine import make_engine, session_scope
    from b2cal_assets.db.models import CatalogFile

    try:
        with session_scope(make_engine(b.database_url), readonly=True) as s:
            if s.scalar(select(func.count(CatalogFile.id))):
                return
    except SQLAlchemyError:
        pass
    _setup_database(b)
    _ensure_runs(b.database_url, b.runs)
    for first in range(0, b.files, 20_000):
        _bulk_insert(b.database_url, _file_rows(first, min(20_000, b.files - first), b.runs))


def part_daemon_rss(b: Bench, seconds: float, min_ticks: int) -> None:
    """Two real daemons side by side for ``seconds`` and until each recorded ``min_ticks`` sensor ticks
    (a loaded machine takes long to start them): b2cal's over the scale database and scripts, and one
    over the stock definitions with a sensor reading the same database's newest row."""
    from b2cal_assets.db.models import CatalogFile
    from b2cal_assets.defs.instance import prepare_dagster_home, start_daemon, stop_daemon

    _ensure_scale_database(b)
    stock_dir = b.root / "daemon_stock" / "project"
    stock_dir.mkdir(parents=True, exist_ok=True)
    rows = [(s.name, s.stage, list(s.depends)) for s in b.shapes]
    (stock_dir / "stock_defs.py").write_text(STOCK.format(shapes=rows, tags=list(TAGS)))
    (stock_dir / "stock_daemon_defs.py").write_text(
        STOCK_DAEMON.format(url=b.database_url, table=CatalogFile.__tablename__)
    )
    homes = {kind: b.root / f"daemon_{kind}" / "dagster" for kind in ("stock", "b2cal")}
    envs = {kind: {**b.env(), "DAGSTER_HOME": str(home)} for kind, home in homes.items()}
    envs["stock"]["PYTHONPATH"] = os.pathsep.join([str(stock_dir), envs["stock"]["PYTHONPATH"]])
    envs["b2cal"]["B2CAL_LOCAL_MAX_PROCESSES"] = "1"
    daemons = {}
    try:
        for kind, home in homes.items():
            prepare_dagster_home(home)
            module = "stock_daemon_defs" if kind == "stock" else "b2cal_assets.definitions"
            daemons[kind] = start_daemon(envs[kind], home.parent / "daemon.log", module=module)
        memory = {kind: DaemonMemory() for kind in daemons}
        say(
            f"rss: two daemons (stock, b2cal over {b.calibrations} calibrations), at least {seconds:.0f} s "
            f"and {min_ticks} sensor ticks each"
        )
        start = time.monotonic()
        ticks = {kind: 0 for kind in daemons}
        last_count = start
        while True:
            for kind, proc in daemons.items():
                if proc.poll() is not None:
                    log = (homes[kind].parent / "daemon.log").read_text()[-3000:]
                    raise SystemExit(f"the {kind} daemon stopped (exit {proc.returncode}):\n{log}")
                memory[kind].sample(proc.pid)
            now = time.monotonic()
            if now - last_count > 5:
                ticks = {kind: _sensor_ticks(home) for kind, home in homes.items()}
                last_count = now
                if now - start >= seconds and min(ticks.values()) >= min_ticks:
                    break
                if now - start > seconds + 600:
                    say(f"rss: gave up waiting for {min_ticks} sensor ticks each: {ticks}")
                    break
            time.sleep(0.5)
    finally:
        for proc in daemons.values():
            stop_daemon(proc)
    for kind in ("stock", "b2cal"):
        m = memory[kind]
        say(
            f"rss: {kind} daemon: tree peak {m.tree_peak_mb:.0f} MB (daemon and code servers), "
            f"daemon process {m.daemon_hwm_mb:.0f} MB, {ticks[kind]} sensor ticks, "
            f"{len(m.run_workers)} run workers left out"
        )
    print_ratio(
        "daemon_tree_rss", "stock_daemon_tree_rss", ratio(memory["b2cal"].tree_peak_mb, memory["stock"].tree_peak_mb), 1
    )
    print_ratio(
        "daemon_process_rss", "stock_daemon_process_rss",
        ratio(memory["b2cal"].daemon_hwm_mb, memory["stock"].daemon_hwm_mb), 1,
    )


def part_rss(b: Bench) -> None:
    """A run worker's peak RSS (a process loading the code location) and the daemon's, against stock."""
    rss = getattr(b, "rss_samples", None)
    if not rss:
        env = b.env()
        env.pop("B2CAL_CALIBRATIONS_DIR")
        stock_dir = b.root / "rss_stock"
        stock_dir.mkdir(exist_ok=True)
        rows = [(s.name, s.stage, list(s.depends)) for s in b.shapes]
        (stock_dir / "stock_defs.py").write_text(STOCK.format(shapes=rows, tags=list(TAGS)))
        write_scripts(b.scripts_dir, b.shapes)
        rss = {"b2cal": [], "stock": []}
        for _ in range(b.repeats):
            rss["stock"].append(_child("stock", str(stock_dir), env)["rss_mb"])
            rss["b2cal"].append(_child("b2cal", str(b.scripts_dir), env)["rss_mb"])
    say(describe("rss: stock definitions process", rss["stock"], unit="MB"))
    say(describe(f"rss: b2cal code location process ({b.calibrations} calibrations)", rss["b2cal"], unit="MB"))
    print_ratio("code_location_rss", "stock_definitions_rss", ratio(median(rss["b2cal"]), median(rss["stock"])), len(rss["b2cal"]))
    part_daemon_rss(b, seconds=20.0 if b.ticks <= 3 else 90.0, min_ticks=b.ticks)


# --- loop overhead ----------------------------------------------------------------------------------


class InstantBackend:
    """Completes each job when its duration has passed, without a process; its files are written as the wrapper would.

    The duration is the job's second argument (``sleep <seconds>``). A thread of its own writes each
    job's ``times`` and ``exit_code`` files (the jobs' work, not the manager's: on a batch system the
    wrapper writes them on the worker), and a job is done once its files are there and its time is up.
    """

    name = "instant"

    def __init__(self) -> None:
        import queue
        import threading

        self._jobs: dict[str, float] = {}
        self._written: set[str] = set()
        self._todo: queue.SimpleQueue[tuple[str, Path, float, float] | None] = queue.SimpleQueue()
        self._ids = 0
        #: CPU seconds the writer thread used: the jobs' work, which a batch system's workers do
        self.writer_cpu = 0.0
        self._writer = threading.Thread(target=self._write, daemon=True)
        self._writer.start()

    def _write(self) -> None:
        from b2cal_assets.backends.wrapper import EXIT_CODE_FILE, TIMES_FILE

        cpu = time.thread_time()
        while (item := self._todo.get()) is not None:
            job_id, workdir, start, end = item
            (workdir / TIMES_FILE).write_text(f"{start:.6f} {end:.6f}\n")
            (workdir / EXIT_CODE_FILE).write_text("0\n")
            self._written.add(job_id)
        self.writer_cpu = time.thread_time() - cpu

    def submit(self, jobs: Sequence[Any]) -> list[Any]:
        from b2cal_assets.backends.base import JobHandle

        now = time.time()
        handles = []
        for spec in jobs:
            self._ids += 1
            job_id = f"instant-{self._ids}"
            end = now + float(spec.argv[1])
            self._jobs[job_id] = end
            self._todo.put((job_id, Path(spec.workdir), now, end))
            handles.append(JobHandle(self.name, job_id, spec.name, Path(spec.workdir)))
        return handles

    def poll(self, handles: Sequence[Any]) -> dict[str, Any]:
        from b2cal_assets.backends.base import JobState, JobStatus

        now = time.time()
        done, running = JobStatus(JobState.DONE, 0), JobStatus(JobState.RUNNING)
        return {
            h.job_id: done if now >= self._jobs[h.job_id] and h.job_id in self._written else running
            for h in handles
        }

    def cancel(self, handles: Sequence[Any]) -> None:
        for handle in handles:
            self._jobs.pop(handle.job_id, None)

    def close(self) -> None:
        self._todo.put(None)
        self._writer.join()

    def job_path(self, path: str | Path) -> str:
        return str(path)

    def job_python(self) -> str:
        return sys.executable


@dataclass
class _Ran:
    """One calibration of the overhead part: when the loop launched it, its jobs and when its manager returned."""

    launched: float
    results: list[Any]
    returned: float
    jobs_cpu: float = 0.0  # the fake jobs' own CPU (the instant backend's writer thread)

    @property
    def first_start(self) -> float:
        return min(r.started_at for r in self.results)

    @property
    def last_end(self) -> float:
        return max(r.finished_at for r in self.results)

    @property
    def longest(self) -> float:
        return max(r.finished_at - r.started_at for r in self.results)


def critical_chain(shapes: Sequence[Shape], longest: dict[str, float]) -> tuple[float, list[str]]:
    """The longest chain through the dependency graph, each calibration weighing its longest job."""
    chain: dict[str, tuple[float, list[str]]] = {}
    for shape in shapes:  # generated in dependency order
        before = max((chain[d] for d in shape.depends), default=(0.0, []), key=lambda c: c[0])
        chain[shape.name] = (before[0] + longest[shape.name], [*before[1], shape.name])
    return max(chain.values(), default=(0.0, []), key=lambda c: c[0])


def part_overhead(b: Bench) -> None:
    """Makespan minus critical path of ``b.subjobs`` subjobs through the real JobManager over the graph."""
    from b2cal_assets.backends.manager import SubmitPolicy

    shapes = b.shapes
    rng = random.Random(len(shapes))
    per, extra = divmod(b.subjobs, len(shapes))
    # a calibration's subjobs last about as long as each other; calibrations differ (0.5x .. 1.5x)
    scale = {s.name: b.job_seconds * rng.uniform(0.5, 1.5) for s in shapes}
    poll = SubmitPolicy(poll_interval_s=b.job_seconds / 40, forgotten_grace_s=60.0)
    # tens of thousands of job directories: on a tmpfs, so that this machine's disk does not stand in
    # for a batch system's shared file system (the workers write their files there, not the orchestrator)
    base = b.jobs_dir or (Path("/dev/shm") if Path("/dev/shm").is_dir() else b.root)
    root = Path(tempfile.mkdtemp(prefix="bench_scale_jobs_", dir=base))
    say(
        f"overhead: {b.subjobs} subjobs over {len(shapes)} calibrations on the {b.jobs_backend} backend, "
        f"jobs of about {b.job_seconds:g} s, manager polls every {poll.poll_interval_s:.3g} s, job directories in {base}"
    )
    try:
        _overhead(b, shapes, per, extra, scale, poll, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _overhead(b: Bench, shapes: list[Shape], per: int, extra: int, scale: dict[str, float], poll: Any, root: Path) -> None:
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    from b2cal_assets.backends.base import BatchBackend, JobSpec, JobState
    from b2cal_assets.backends.local import LocalBackend
    from b2cal_assets.backends.manager import JobManager, RetryPolicy

    def run_calibration(index: int, shape: Shape) -> _Ran:
        launched = time.time()
        specs = []
        rng = random.Random(shape.name)  # each thread its own: the same durations in every run
        for i in range(per + (index < extra)):
            workdir = root / shape.name / str(i)
            workdir.mkdir(parents=True)  # as the runner does before its manager starts
            seconds = scale[shape.name] * rng.uniform(0.9, 1.1)
            specs.append(JobSpec(f"{shape.name}.0.{i}", ("sleep", f"{seconds:.3f}"), workdir))
        backend: BatchBackend = LocalBackend(max_processes=len(specs)) if b.jobs_backend == "local" else InstantBackend()  # type: ignore[assignment]
        manager = JobManager(backend, poll, RetryPolicy(max_retries=0), state_file=root / shape.name / "jobs.json")
        try:
            results = manager.run(specs)
            returned = time.time()
        finally:
            if isinstance(backend, InstantBackend):
                backend.close()
        return _Ran(launched, results, returned, backend.writer_cpu if isinstance(backend, InstantBackend) else 0.0)

    ran: dict[str, _Ran] = {}
    index = {s.name: i for i, s in enumerate(shapes)}
    waiting = {s.name: s for s in shapes}
    started, cpu = time.time(), time.process_time()
    with ThreadPoolExecutor(max_workers=len(shapes)) as pool:
        live: dict[Future[_Ran], str] = {}

        def launch() -> None:
            for name, shape in list(waiting.items()):
                if all(d in ran for d in shape.depends):
                    del waiting[name]
                    live[pool.submit(run_calibration, index[name], shape)] = name

        launch()
        while live:
            done, _ = wait(live, return_when=FIRST_COMPLETED)
            for future in done:
                ran[live.pop(future)] = future.result()
            launch()
    makespan, cpu = time.time() - started, time.process_time() - cpu
    jobs = [r for c in ran.values() for r in c.results]
    failed = [r for r in jobs if r.state != JobState.DONE]
    if failed:
        raise SystemExit(f"overhead: {len(failed)} of {len(jobs)} subjobs failed, e.g. {failed[0].spec.name}: {failed[0].reason}")
    unknown = [r for r in jobs if r.started_at is None or r.finished_at is None]
    if unknown:
        raise SystemExit(f"overhead: {len(unknown)} subjobs recorded no start or end, e.g. {unknown[0].spec.name}")
    path, chain = critical_chain(shapes, {name: c.longest for name, c in ran.items()})
    overhead = makespan - path
    # where the chain's overhead went: before its jobs start, their spread past the longest, after they end
    before = sum(ran[n].first_start - ran[n].launched for n in chain)
    spread = sum(ran[n].last_end - ran[n].first_start - ran[n].longest for n in chain)
    after = sum(ran[n].returned - ran[n].last_end for n in chain)
    say(f"overhead: makespan {makespan:.2f} s, critical path of the jobs' own durations {path:.2f} s ({len(chain)} calibrations)")
    say(
        f"overhead: on the critical chain {before:.2f} s from launch to the first job's start (workdirs, submission), "
        f"{spread:.2f} s of jobs starting later than the first, {after:.2f} s from the last job's end to the manager's return"
    )
    say(f"overhead: loop overhead {overhead:.2f} s ({100 * ratio(overhead, path):.1f} % of the critical path, target under 5 %)")
    # an upper bound of the managers' own cost (this process also runs the fake jobs' writers), less noisy than wall time
    say(f"overhead: {cpu:.2f} s of CPU in this process, {1000 * cpu / len(jobs):.3f} ms per subjob")
    jobs_cpu = sum(c.jobs_cpu for c in ran.values())
    if jobs_cpu:
        own = cpu - jobs_cpu
        say(
            f"overhead: of which {jobs_cpu:.2f} s the fake jobs writing their files; the rest (managers, scheduling) "
            f"{own:.2f} s, {1000 * own / len(jobs):.3f} ms per subjob"
        )
    # the costs are per calibration, not per job-second: what the same overhead is next to real subjobs
    level = overhead / max(len(chain), 1)
    say(
        f"overhead: {level:.2f} s per calibration on the chain; with 10-minute subjobs that would be "
        f"{100 * level / 600:.2f} % of the critical path"
    )
    print_ratio("loop_overhead", "critical_path", ratio(overhead, path), 1, note="target 0.05")


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--calibrations", type=int, help="scripts of the loop (default 60, quick 12)")
    p.add_argument("--large", type=int, help="the larger definitions size (default 500, quick 40)")
    p.add_argument("--processings", type=int, help="open processings (default 3, quick 2)")
    p.add_argument("--runs", type=int, help="runs over all processings (default 6000, quick 100)")
    p.add_argument("--files", type=int, help="catalog files (default 200000, quick 2000)")
    p.add_argument("--repeats", type=int, help="repeats per measurement (default 3, quick 1)")
    p.add_argument("--ticks", type=int, help="sensor ticks per sensor (default 20, quick 3)")
    p.add_argument("--subjobs", type=int, help="collector subjobs of the overhead part (default 20000, quick 300)")
    p.add_argument("--job-seconds", type=float, help="a subjob's typical duration (default 10, quick 0.3)")
    p.add_argument(
        "--jobs-backend", choices=("instant", "local"), default="instant", help="the overhead part's backend"
    )
    p.add_argument("--jobs-dir", type=Path, help="where the overhead part's job directories go (default /dev/shm)")
    p.add_argument("--database-url", default="", help="calibration database (default: SQLite in a temp dir)")
    p.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts")
    args = p.parse_args()
    q = args.quick
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        root = Path(tmp)
        b = Bench(
            root=root,
            calibrations=args.calibrations or (12 if q else 60),
            large=args.large or (40 if q else 500),
            processings=args.processings or (2 if q else 3),
            runs=args.runs or (100 if q else 6000),
            files=args.files or (2000 if q else 200_000),
            repeats=args.repeats or (1 if q else 3),
            ticks=args.ticks or (3 if q else 20),
            database_url=args.database_url or f"sqlite:///{root / 'home' / 'calibration.sqlite'}",
            subjobs=args.subjobs or (300 if q else 20_000),
            job_seconds=args.job_seconds or (0.3 if q else 10.0),
            jobs_backend=args.jobs_backend,
            jobs_dir=args.jobs_dir,
        )
        (root / "home").mkdir()
        parts = args.only or list(PARTS)
        say(
            f"scale: {b.calibrations} calibrations, {b.processings} processings over {b.runs} runs, "
            f"{b.files} catalog files; parts: {', '.join(parts)}"
        )
        if "definitions" in parts:
            part_definitions(b)
        needs_db = {"catalog", "sensors", "status", "size"} & set(parts)
        if needs_db:
            _setup_database(b)
            next_file = part_catalog(b)
            if "sensors" in parts:
                part_sensors(b, next_file)
            if "status" in parts:
                part_status(b)
            if "size" in parts:
                part_size(b)
        if "rss" in parts:
            part_rss(b)
        if "overhead" in parts:
            part_overhead(b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
