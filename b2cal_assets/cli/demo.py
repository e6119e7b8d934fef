"""``b2cal demo``: a whole prompt calibration loop of the synthetic detector, unattended, end to end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from b2cal_assets import home
from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.cli import UserError
from b2cal_assets.cli.common import loop_service, number_type, user_errors
from b2cal_assets.cli.site import add_runner_arguments
from b2cal_assets.cli.tables import print_table
from b2cal_assets.db.engine import database_url, ensure_schema, make_engine, session_scope
from b2cal_assets.db.repo import processings
from b2cal_assets.defs.instance import (
    prepare_dagster_home,
    start_daemon,
    stop_daemon,
    stop_daemon_session,
    wait_for_runs,
)
from b2cal_assets.demo import generator, truth
from b2cal_assets.demo.generator import GeneratedFile
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.processing import ProcessingKind, ProcessingSpec, SignoffPolicy, SiteSpec
from b2cal_assets.domain.site_runner import RunnerKind
from b2cal_assets.domain.states import (
    ACTIVE_STATES,
    DONE_STATES,
    MOVING_STATES,
    RESUBMIT_STATES,
    CalibrationState,
)
from b2cal_assets.files import atomic_write_text
from b2cal_assets.loop import admin
from b2cal_assets.loop.factory import loop_service as shared_loop_service
from b2cal_assets.settings import settings as deployment_settings

DEMO_SITE = "demo_site"
FRAMEWORK_TOOL = "b2caf-prompt-run"
BASE_TAG = "demo_base"


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run a whole calibration loop of the synthetic detector through Dagster",
        description="Generates skims, registers processings, starts the Dagster daemon (sensors, run queue) "
        "and follows the loop to the end: exit 0 only if every calibration is signed off.",
    )
    p.add_argument(
        "--processings",
        type=number_type(minimum=1, maximum=100, integer=True),
        default=2,
        help="processings in flight at once (default 2)",
    )
    p.add_argument(
        "--runs",
        type=number_type(minimum=1, maximum=10_000, integer=True),
        default=6,
        help="runs per processing (default 6)",
    )
    p.add_argument(
        "--events-per-run",
        type=number_type(minimum=1, integer=True),
        default=None,
        help="events per run (default: the generator's)",
    )
    p.add_argument(
        "--backend", default="local", help="batch backend of the demo site: local (default) or slurm"
    )
    p.add_argument(
        "--path-prefix", default="", help="jobs read skims through this prefix, e.g. root://127.0.0.1:1094/"
    )
    add_runner_arguments(p)  # the demo site's runner
    p.add_argument("--data-dir", default=None, help="where the skims are written (default: $B2CAL_HOME/data)")
    p.add_argument(
        "--storage-root", default=None, help="the folder the path prefix points at (default: the data dir)"
    )
    p.add_argument(
        "--max-processes",
        type=number_type(minimum=1, maximum=1024, integer=True),
        default=2,
        help="local pool size for collector subjobs",
    )
    p.add_argument(
        "--window-minutes",
        type=number_type(maximum=60 * 24 * 366),
        default=0.0,
        help="submission window before defaults run",
    )
    p.add_argument(
        "--signoff", choices=["automatic", "manual"], default="automatic", help="site sign-off policy"
    )
    p.add_argument(
        "--timeout", type=number_type(maximum=10**7), default=1800.0, help="give up after this many seconds"
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start from an empty $B2CAL_HOME (without it, a demo that was stopped resumes where it was)",
    )
    p.add_argument(
        "--seed",
        type=number_type(maximum=2**32 - 1, integer=True),
        default=1,
        help="random seed of the synthetic detector",
    )
    p.set_defaults(func=run)


def _wipe(home: Path) -> None:
    marker = home / ".b2cal-home"
    if home.exists() and any(home.iterdir()) and not marker.exists():
        raise UserError(
            f"--fresh would delete {home}, which does not look like a b2cal home (no .b2cal-home marker); "
            "point B2CAL_HOME at an empty or b2cal-made folder"
        )
    shutil.rmtree(home, ignore_errors=True)


def run(args) -> int:
    if args.processings < 1 or args.runs < 1:
        raise UserError("--processings and --runs must be at least 1")
    framework_path = _check_framework(args)  # before --fresh wipes anything
    root = home.b2cal_home()
    if args.fresh:
        _wipe(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / ".b2cal-home").touch()
    os.environ.setdefault("DAGSTER_HOME", str(home.dagster_home()))
    url = database_url()
    with user_errors():
        ensure_schema(url)
    say = _Printer()
    say(f"b2cal demo in {root} (database {url.split('://')[0]}, backend {args.backend}, runner {args.runner})")
    names = _prepare(args, say)

    dagster_home = Path(os.environ["DAGSTER_HOME"])
    prepare_dagster_home(dagster_home)
    env = {"B2CAL_HOME": str(root), "DAGSTER_HOME": str(dagster_home)}
    env.update(_backend_env(args))
    if framework_path:
        env["PATH"] = framework_path
    _stop_leftover_daemon(root, say)
    say("starting the Dagster daemon (sensors tick, runs start from the queue) ...")
    daemon = start_daemon(env, root / "logs" / "dagster-daemon.log")
    _daemon_pid_file(root).write_text(f"{daemon.pid}\n")
    # A SIGTERM (CI timeouts, `kill`) must not leave the daemon running on its own.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        finished = _follow(names, args, say, daemon)
        if finished and wait_for_runs(dagster_home, timeout=120) != 0:
            say("some Dagster runs were still going after 2 minutes; see the UI")
    except KeyboardInterrupt:
        say("interrupted: stopping the daemon")
        finished = False
    finally:
        stop_daemon(daemon)
        _daemon_pid_file(root).unlink(missing_ok=True)
    return _report(names, say, finished)


def _daemon_pid_file(root: Path) -> Path:
    return root / "logs" / "dagster-daemon.pid"


def _stop_leftover_daemon(root: Path, say) -> None:
    """A demo killed with SIGKILL leaves its daemon running; two daemons on one instance must not be."""
    try:
        pid = int(_daemon_pid_file(root).read_text().strip())
    except (OSError, ValueError):
        return
    if stop_daemon_session(pid):
        say(f"stopped the Dagster daemon (pid {pid}) that an interrupted demo left running")
    _daemon_pid_file(root).unlink(missing_ok=True)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _check_framework(args) -> str:
    """With ``--runner framework``: the PATH its jobs get (this interpreter's folder first, for a stand-in
    written in Python), once ``b2caf-prompt-run`` is known to be there or the setup commands bring it."""
    if args.runner != RunnerKind.FRAMEWORK:
        if args.framework_setup:
            raise UserError("--framework-setup is a setting of the framework runner; add --runner framework")
        return ""
    if args.path_prefix:
        raise UserError(
            "--path-prefix does not go with --runner framework: b2caf-prompt-run reads each run's files "
            "from a local directory"
        )
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    if not args.framework_setup and shutil.which(FRAMEWORK_TOOL, path=path) is None:
        raise UserError(
            f"--runner framework: {FRAMEWORK_TOOL} is not on PATH; set up the framework first (or pass "
            "--framework-setup 'source .../b2setup <release>'); without the framework, try the tests' "
            "stand-in: PATH=$PWD/b2cal_assets_tests/fixtures/framework_bin:$PATH"
        )
    return path


def _backend_env(args) -> dict[str, str]:
    env = {"B2CAL_LOCAL_MAX_PROCESSES": str(args.max_processes), "B2CAL_BATCH_POLL_INTERVAL_S": "1"}
    current = deployment_settings()
    if args.backend == "slurm" and not (os.environ.get("SLURM_CONF") or current.slurm_conf):
        conf = current.services_dir / "slurm" / "slurm.conf"
        if not conf.exists():
            raise UserError(
                "--backend slurm needs a Slurm cluster: set SLURM_CONF, or start the test cluster with "
                "`bash .ci/services/slurm.sh`"
            )
        env["SLURM_CONF"] = str(conf)
    return env


def _prepare(args, say) -> list[str]:
    """Generate the skims and register site, processings and files, or resume where that got."""
    manifest = _Manifest(home.b2cal_home() / MANIFEST)
    settings = _settings(args)
    manifest.check(settings)
    if manifest.stage == "registered":
        names = manifest.data["processings"]
        say(
            f"resuming the demo: {len(names)} processing(s) and {len(manifest.files())} skim files are "
            "already registered (kept as they are); the loop goes on where it was"
        )
        return names
    total_runs = args.processings * args.runs
    files = manifest.files() if manifest.stage == "generated" else None
    if files and all(Path(f.path).is_file() and Path(f.path).stat().st_size == f.size_bytes for f in files):
        say(f"resuming the demo: the skims of {total_runs} runs were generated already (kept as they are)")
    else:
        files = None
    if files is None:
        files = _generate(args, say, total_runs)
        manifest.save(settings, "generated", files=files)
    return _register(args, say, files, manifest, settings)


MANIFEST = "demo.json"


def _settings(args) -> dict:
    """What a resumed demo must share with the one it resumes (data, processings, site)."""
    return {
        "processings": args.processings,
        "runs": args.runs,
        "events_per_run": args.events_per_run,
        "seed": args.seed,
        "backend": args.backend,
        "path_prefix": args.path_prefix,
        "data_dir": str(Path(args.data_dir).resolve()) if args.data_dir else "",
        "storage_root": str(Path(args.storage_root).resolve()) if args.storage_root else "",
        "signoff": args.signoff,
        "window_minutes": args.window_minutes,
        # only when set: a demo made before the framework runner existed resumes as it was
        **(
            {"runner": args.runner, "framework_setup": list(args.framework_setup)}
            if args.runner == RunnerKind.FRAMEWORK
            else {}
        ),
    }


class _Manifest:
    """``$B2CAL_HOME/demo.json``: how far the demo's preparation got, so a rerun does not repeat it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    @property
    def stage(self) -> str:
        return self.data.get("stage", "")

    def check(self, settings: dict) -> None:
        saved = self.data.get("settings")
        if saved is None or saved == settings:
            return
        differ = ", ".join(
            f"{k} {saved.get(k)!r} (now {settings.get(k)!r})"
            for k in {**saved, **settings}
            if saved.get(k) != settings.get(k)
        )
        raise UserError(
            f"{self.path.parent} holds a demo made with other settings: {differ}; rerun with those to "
            "resume it, or add --fresh to start again"
        )

    def files(self) -> list:
        return [GeneratedFile(**f) for f in self.data.get("files", [])]

    def save(self, settings: dict, stage: str, *, files=None, processings=None) -> None:
        self.data.update(settings=settings, stage=stage)
        if files is not None:
            self.data["files"] = [f.to_dict() for f in files]
        if processings is not None:
            self.data["processings"] = processings
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True))


def _generate(args, say, total_runs: int) -> list:
    say(f"generating calibration skims for {total_runs} runs of the synthetic detector ...")
    # Every processing gets the same mix of runs (short, cosmic, bad for alignment, continuum, good).
    kwargs = {
        "exp": 1,
        "first_run": 1,
        "runs": total_runs,
        "seed": args.seed,
        "run_info": lambda i: generator.default_run_info(i % args.runs),
        "small_runs": tuple(r for r in range(1, total_runs + 1) if (r - 1) % args.runs in (1, 4)),
    }
    if args.events_per_run:
        kwargs["events_per_run"] = args.events_per_run
    data_dir = Path(args.data_dir).resolve() if args.data_dir else home.data_dir()
    files = generator.generate(data_dir, **kwargs)
    say(f"  {len(files)} files, {sum(f.n_events for f in files):,} events")
    return files


def _register(args, say, files, manifest, settings) -> list[str]:
    data_dir = Path(args.data_dir).resolve() if args.data_dir else home.data_dir()
    with session_scope(make_engine(database_url())) as s:
        existing = {p.name for p in processings.list_processings(s)}
    with user_errors():
        admin.ensure_site(
            SiteSpec(
                name=DEMO_SITE,
                backend=args.backend,
                backend_args={},
                storage_root=str(Path(args.storage_root).resolve() if args.storage_root else data_dir),
                path_prefix=args.path_prefix,
                signoff_policy=SignoffPolicy(args.signoff),
                hold_until_deadline=False,
                runner=RunnerKind(args.runner),
                runner_args=(
                    {"setup": list(args.framework_setup), "heartbeat": 1}
                    if args.runner == RunnerKind.FRAMEWORK
                    else {}
                ),
            )
        )
        admin.write_global_tag(BASE_TAG, truth.NOMINAL)
        names = []
        for i in range(args.processings):
            first = 1 + i * args.runs
            name = f"prompt_demo_{i + 1}"
            names.append(name)
            if name in existing:  # an interrupted preparation got this far
                say(f"processing {name}: already registered")
                continue
            admin.create_processing(
                ProcessingSpec(
                    name=name,
                    kind=ProcessingKind.PROMPT,
                    site=DEMO_SITE,
                    iov=IoV(1, first, 1, first + args.runs - 1),
                    global_tags=(BASE_TAG,),
                    window_hours=args.window_minutes / 60.0,
                ),
                created_by="demo",
            )
            say(f"processing {name}: exp 1 runs {first}-{first + args.runs - 1} at {DEMO_SITE}")
        new = admin.register_files(files, site_name=DEMO_SITE)
    say(f"data arrival: {new} files registered in the data catalog")
    manifest.save(settings, "registered", processings=names)
    return names


class _Printer:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", flush=True)


def _follow(names: list[str], args, say, daemon) -> bool:
    """Print every state change until every processing finished, nothing can move, or time is up."""
    service = loop_service(args)
    last: dict[tuple[str, str], str] = {}
    deadline = time.monotonic() + args.timeout
    idle_since: float | None = None
    next_summary = time.monotonic() + 30
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            say(
                f"the Dagster daemon stopped (exit {daemon.returncode}); see $B2CAL_HOME/logs/dagster-daemon.log"
            )
            return False
        all_done, moving, stuck = True, False, False
        summaries = []
        for name in names:
            rows = service.status_rows(name)
            if not rows:
                all_done = False  # the loop sensor has not seen this processing yet
                continue
            first = not any((name, r.step) in last for r in rows)
            for row in rows:
                key = (name, row.step)
                if not first and last.get(key) != row.state:
                    extra = (
                        f" ({row.error.splitlines()[0][:160]})"
                        if row.state == CalibrationState.FAILED and row.error
                        else ""
                    )
                    say(f"{name:>14} {row.step:<22} {last.get(key, '-'):>11} -> {row.state}{extra}")
                    if row.state == CalibrationState.FINISHED and args.signoff == "manual":
                        say(
                            f"{'':>14} sign it off: b2cal signoff {name} {row.step} --accept (or from the UI)"
                        )
                last[key] = row.state
                all_done = all_done and row.state in DONE_STATES
                moving = moving or row.state in MOVING_STATES
                stuck = stuck or row.state in RESUBMIT_STATES
            done = sum(r.state in DONE_STATES for r in rows)
            active = [r.step for r in rows if r.state in ACTIVE_STATES]
            summaries.append(
                f"{name}: {done}/{len(rows)} signed off"
                + (f", active: {', '.join(active)}" if active else "")
            )
            if first:
                say(f"{name}: the loop sensor registered {len(rows)} steps; {summaries[-1]}")
        if all_done:
            say("every calibration is signed off")
            return True
        if time.monotonic() >= next_summary:
            for line in summaries:
                say(line)
            next_summary = time.monotonic() + 30
        if stuck and not moving:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 20:
                say("the loop cannot go on: a calibration failed or was rejected (see the table below)")
                return False
        else:
            idle_since = None
        time.sleep(1.0)
    say(f"gave up after {args.timeout:.0f} s")
    return False


def _report(names: list[str], say, finished: bool) -> int:
    service = shared_loop_service()
    ok = finished
    for name in names:
        table = []
        rows = service.status_rows(name)
        ok = ok and bool(rows)
        for row in rows:
            deviation = ""
            if row.payloads:
                deviation, within = _deviation(service, name, row.step, truth)
                if not within:
                    ok = False
            if row.state != CalibrationState.SIGNED_OFF:
                ok = False
            table.append(
                [
                    row.step,
                    row.stage,
                    row.state,
                    str(row.iterations or ""),
                    str(row.payloads or ""),
                    f"{row.wall_seconds:.1f}s" if row.wall_seconds is not None else "",
                    deviation,
                ]
            )
        print(f"\nprocessing {name}")
        print_table(
            ["calibration", "stage", "state", "iterations", "payloads", "wall time", "deviation from truth"],
            table,
        )
    print()
    print(
        "RESULT: every calibration signed off, constants within tolerance"
        if ok
        else "RESULT: the loop did not finish cleanly"
    )
    print("Open the UI:   make dev   (then http://127.0.0.1:3000)   with the same B2CAL_HOME")
    sys.stdout.flush()
    return 0 if ok else 1


def _deviation(service, processing: str, calibration: str, truth) -> tuple[str, bool]:
    """The worst constant's deviation from the generator's truth, as a fraction of its tolerance."""
    worst = None
    within = True
    for p in service.current_payloads(processing, calibration):
        if p.name not in truth.TRUTH:
            continue
        constants = read_payload(p.file)
        within = within and truth.within_tolerance(p.name, constants)
        tolerances = truth.TOLERANCES.get(p.name, {})
        for key, value in truth.deviation(p.name, constants).items():
            tolerance = tolerances.get(key)
            fraction = value / tolerance if tolerance else float("inf")
            if worst is None or fraction > worst[2]:
                worst = (f"{p.name}.{key}", value, fraction, tolerance)
    if worst is None:
        return "", True
    name, value, fraction, tolerance = worst
    mark = "ok" if within else "OUT OF TOLERANCE"
    return f"{name} {value:.3g} (tolerance {tolerance:.3g}, {mark})", within
