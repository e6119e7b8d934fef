"""The fault matrix of issue 11 on the whole toy loop, for ``bench_faults.py``: each fault made the way
the fault tests make it (``b2cal_assets_tests/defs/test_*faults*.py``, ``test_database_restart.py``,
``test_full_disk.py``, ``e2e/test_*faults.py``), timed against a clean loop of the same kind.

In process (sensors ticked and runs executed in this process, as ``loop/daemon_like.py`` does):
``subjobs_fail_once_10pct``, ``database_restart_mariadb``/``_postgres`` (a private server stopped while
toy_a's jobs run and started once they ended), ``full_payload_store`` (a 16 MiB tmpfs, full before the
run, freed once toy_a has failed on it) and ``full_disk_mid_run`` (the work directory's tmpfs filled while
toy_a's jobs run, freed once the attempt has failed): in both the loop resumes the attempt by itself when
there is room again (one extra attempt, no manual step). Through the real daemon:
``code_server_stopped_60s`` (SIGSTOP/SIGCONT), ``daemon_killed`` (``kill -9`` of its session, started
again) and ``database_restart_daemon_mariadb`` (the calibration database on a private MariaDB server,
stopped while toy_a's jobs run and started once they ended; its clean twin on the same kind of server).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class LoopOutcome:
    survived: bool
    manual_steps: int
    wall_s: float
    attempts: int  # attempts made over all steps (one per step when nothing was done twice)
    subjob_tries: int  # collector subjob tries over all steps
    note: str = ""
    extra_attempts: int = 0  # attempts the fault adds by design (a full disk: the loop's one restart)


@contextlib.contextmanager
def toy_environment(root: Path, extra: dict[str, str]) -> Iterator[None]:
    """``os.environ`` for one toy loop in ``root``; restored afterwards."""
    from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS

    saved = dict(os.environ)
    os.environ.update(
        {
            "B2CAL_HOME": str(root),
            "B2CAL_CALIBRATIONS_DIR": str(TOY_SCRIPTS),
            "B2CAL_LOCAL_MAX_PROCESSES": "2",
            "B2CAL_BATCH_RETRY_DELAY_S": "1",
            "B2CAL_BATCH_POLL_INTERVAL_S": "0.5",
            **extra,
        }
    )
    if "B2CAL_DATABASE_URL" not in extra:
        os.environ.pop("B2CAL_DATABASE_URL", None)  # SQLite in the toy home
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def prepare_toy(root: Path, runs: int, fail_once: tuple[str, ...] = ()) -> None:
    from b2cal_assets.db.engine import database_url, ensure_schema
    from b2cal_assets.loop import admin
    from b2cal_assets_tests.defs import toy
    from b2cal_assets_tests.defs.conftest import make_processing, make_site

    ensure_schema(database_url())
    make_site()
    admin.register_files(toy.generate(root / "data", range(1, runs + 1), events=500), site_name="toy_site")
    make_processing("p1", range(1, runs + 1))
    if fail_once:
        (root / "fail_once").mkdir()
        for name in fail_once:
            (root / "fail_once" / name).touch()


def counts() -> tuple[bool, int, int]:
    """Signed off?, the attempts made, and the collector subjob tries of each step's last attempt (a
    restart that resumes carries its finished subjobs over from the checkpoint, tries unchanged)."""
    from b2cal_assets.db.engine import database_url
    from b2cal_assets.db.repo import attempts, jobs
    from b2cal_assets.loop.factory import loop_service
    from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS

    service = loop_service(database_url(), str(TOY_SCRIPTS))
    done = set(service.step_states("p1").values()) == {"signed_off"}
    with service.session() as s:
        made = attempts.list_attempts(s, "p1")
        last = {a.calibration: a for a in made}  # in number order: the last one wins
        tries = sum(j.tries for a in last.values() for j in jobs.list_jobs(s, a.id))
    return done, len(made), tries


def drive_in_process(between: Callable[[], None] | None = None, timeout_s: float = 600) -> None:
    """Tick and run until p1 is signed off; a tick that meets the database away is made again."""
    import dagster as dg
    from sqlalchemy.exc import DBAPIError

    from b2cal_assets.db.engine import database_url
    from b2cal_assets.db.errors import DatabaseError
    from b2cal_assets.loop.factory import loop_service
    from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
    from b2cal_assets_tests.defs.test_batch_faults import loop_definitions
    from b2cal_assets_tests.loop.daemon_like import Daemon

    service = loop_service(database_url(), str(TOY_SCRIPTS))
    with dg.instance_for_test() as instance:
        daemon = Daemon(loop_definitions(), instance)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                daemon.settle()
                if set(service.step_states("p1").values()) == {"signed_off"}:
                    return
                if between is not None:
                    between()
            except (DBAPIError, DatabaseError):
                time.sleep(1)


IN_PROCESS = {  # fault: (runs, environment) of both the fault and its clean twin
    "subjobs_fail_once_10pct": (10, {"B2CAL_TOY_A_MAX_JOBS": "10"}),
    "database_restart_mariadb": (2, {"B2CAL_TOY_SLEEP_S": "3"}),
    "database_restart_postgres": (2, {"B2CAL_TOY_SLEEP_S": "3"}),
    "full_payload_store": (2, {}),
    "full_disk_mid_run": (2, {"B2CAL_TOY_SLEEP_S": "3"}),
}
# one subjob of each calibration fails on its first try: 3 of 30 (the same as the fault test)
FAIL_ONCE = ("hadron_calib_e1_r3.root", "bhabha_all_calib_e1_r6.root", "cdst_e1_r9.root")
# ``tiny``: the same with 3 runs, one subjob a run: 3 of 9
TINY_RUNS = 3
TINY_FAIL_ONCE = ("hadron_calib_e1_r1.root", "bhabha_all_calib_e1_r2.root", "cdst_e1_r3.root")


def in_process(fault: str, inject: bool, *, tiny: bool = False) -> LoopOutcome:
    """``fault`` (``inject``) or its clean twin: the same loop, database and settings, nothing injected.
    ``tiny``: the fault of failing subjobs on 3 runs instead of 10 (the others have 2 already)."""
    runs, env = IN_PROCESS[fault]
    env = dict(env)
    fail_once_files = FAIL_ONCE
    if tiny and runs > TINY_RUNS:
        runs, fail_once_files = TINY_RUNS, TINY_FAIL_ONCE
        env["B2CAL_TOY_A_MAX_JOBS"] = str(TINY_RUNS)
    root = Path(tempfile.mkdtemp(prefix=f"b2cal-bench-{fault}-"))
    server = None
    try:
        if fault.startswith("database_restart_"):
            from b2cal_assets_tests.fixtures.private_db import PrivateMariaDB, PrivatePostgres

            kind = fault.removeprefix("database_restart_")
            server_root = Path(tempfile.mkdtemp(prefix=f"b2cal-bench-{kind}-"))
            server = PrivateMariaDB(server_root) if kind == "mariadb" else PrivatePostgres(server_root)
            server.start()
            env["B2CAL_DATABASE_URL"] = server.url
        with toy_environment(root, env):
            fail_once = fail_once_files if inject and fault == "subjobs_fail_once_10pct" else ()
            prepare_toy(root, runs, fail_once)
            manual, between, note, restarter, log = 0, None, "", None, []
            if inject and server is not None:
                from b2cal_assets_tests.defs.test_database_restart import restart_while_toy_a_runs

                restarter = threading.Thread(
                    target=restart_while_toy_a_runs, args=(server, log, threading.Event()), daemon=True
                )
                restarter.start()
            full_disk = inject and fault.startswith("full_")
            stop = threading.Event()
            if full_disk:
                from b2cal_assets_tests.fixtures.disk import fill

                disk = root / "disk"
                disk.mkdir()
                subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=True)
            if inject and fault == "full_payload_store":
                (root / "payloads").symlink_to(disk)
                fill(disk)
                between = _free_once_failed(disk)  # room again: the loop resumes toy_a by itself
            if inject and fault == "full_disk_mid_run":
                from b2cal_assets_tests.defs.test_full_disk import fill_while_toy_a_runs

                (root / "work").symlink_to(disk)
                restarter = threading.Thread(
                    target=fill_while_toy_a_runs, args=(disk, log, stop), daemon=True
                )
                restarter.start()
            start = time.perf_counter()
            try:
                drive_in_process(between)
            finally:
                wall = time.perf_counter() - start
                stop.set()
                if restarter is not None:
                    restarter.join(timeout=180)
                    shown = (
                        log if server is not None else log[:1] + log[-1:]
                    )  # the disk's middle: a status note
                    note = ("database " if server is not None else "disk ") + ", ".join(shown)
                if full_disk:
                    subprocess.run(["umount", "-l", str(root / "disk")], check=False)
            done, made, tries = counts()
        extra = 1 if full_disk else 0
        return LoopOutcome(done, manual if done else manual + 1, wall, made, tries, note, extra)
    finally:
        from b2cal_assets.db.engine import dispose_engine

        if server is not None:
            dispose_engine(server.url)
            with contextlib.suppress(Exception):
                server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def _free_once_failed(disk: Path) -> Callable[[], None]:
    """The full store's room comes back once toy_a has failed on it (no b2cal command is run)."""

    def between() -> None:
        from b2cal_assets.db.engine import database_url
        from b2cal_assets.loop.factory import loop_service
        from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS

        if loop_service(database_url(), str(TOY_SCRIPTS)).step_states("p1").get("toy_a") == "failed":
            for filler in disk.glob(".filler*"):
                filler.unlink()

    return between


DAEMON_FAULTS = ("code_server_stopped_60s", "daemon_killed", "database_restart_daemon_mariadb")


def through_daemon(fault: str, timeout_s: float = 900, *, mariadb: bool = False) -> LoopOutcome:
    """``fault`` (or ``clean``) through the real daemon; ``mariadb``: the calibration database on a
    private MariaDB server (the database-restart fault and its clean twin), else SQLite."""
    from b2cal_assets import home
    from b2cal_assets.db.engine import dispose_engine
    from b2cal_assets.defs.instance import (
        default_instance_yaml,
        prepare_dagster_home,
        start_daemon,
        stop_daemon,
    )
    from b2cal_assets_tests.e2e.test_code_server_faults import code_servers
    from b2cal_assets_tests.e2e.test_daemon_faults import kill_session, toy_a_submitted_jobs
    from b2cal_assets_tests.e2e.toy_daemon import toy_daemon_env
    from b2cal_assets_tests.fixtures.private_db import PrivateMariaDB

    root = Path(tempfile.mkdtemp(prefix=f"b2cal-bench-{fault}-"))
    dagster_home = root / "dagster"
    server = None
    extra = {}
    if mariadb:
        server = PrivateMariaDB(Path(tempfile.mkdtemp(prefix="b2cal-bench-mariadb-")))
        server.start()
        extra["B2CAL_DATABASE_URL"] = server.url
    env = toy_daemon_env(root, B2CAL_TOY_SLEEP_S="10", DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS="30", **extra)
    yaml = default_instance_yaml().replace("poll_interval_seconds: 15", "poll_interval_seconds: 5")
    note = ""
    try:
        with toy_environment(root, env):
            prepare_toy(root, 2)
            prepare_dagster_home(dagster_home, yaml)
            log = root / "logs" / "daemon.log"
            start = time.perf_counter()
            daemon = start_daemon(env, log)
            try:
                if fault != "clean":
                    _until(lambda: toy_a_submitted_jobs("p1"), timeout_s)
                if fault == "code_server_stopped_60s":
                    stopped = code_servers(daemon)
                    for pid in stopped:
                        os.kill(pid, signal.SIGSTOP)
                    time.sleep(60)
                    for pid in stopped:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGCONT)
                elif fault == "daemon_killed":
                    kill_session(daemon)
                    time.sleep(3)
                    daemon = start_daemon(env, log)  # as the README says: the same command again
                elif fault == "database_restart_daemon_mariadb" and server is not None:
                    outputs = home.attempt_work_dir("p1", "toy_a", 1) / "toy_a" / "0" / "collector_output"
                    dispose_engine(server.url)
                    server.stop()  # until toy_a's jobs have ended, and a few sensor ticks more
                    _until(lambda: len(list(outputs.glob("*/exit_code"))) == 2, timeout_s)
                    time.sleep(8)
                    server.start()
                    note = "database stopped while toy_a's jobs ran, started after they ended"
                _until(lambda: _signed_off_or_dead(daemon), timeout_s)
            finally:
                wall = time.perf_counter() - start
                stop_daemon(daemon)
            done, made, tries = counts()
        return LoopOutcome(done, 0 if done else 1, wall, made, tries, note)
    finally:
        if server is not None:
            dispose_engine(server.url)
            with contextlib.suppress(Exception):
                server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def _signed_off_or_dead(daemon: subprocess.Popen) -> bool:
    return daemon.poll() is not None or counts()[0]


def _until(predicate: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s:.0f} s")
        time.sleep(0.5)
