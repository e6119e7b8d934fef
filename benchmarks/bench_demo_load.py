"""Does ``b2cal demo`` finish on a loaded machine? The same small demo clean, then with CPU hogs beside it.

    .venv/bin/python benchmarks/bench_demo_load.py                 # 4 busy loops beside it (about 15 min)
    .venv/bin/python benchmarks/bench_demo_load.py --beside demos  # 4 more demos beside it instead (long)
    .venv/bin/python benchmarks/bench_demo_load.py --quick         # 2 busy loops, 1 processing

Issue 11 asks that the demo finish with four other demos beside it. On the 2-core machines four whole
demos take longer than a benchmark run should, so by default four busy-loop processes stand in for them
(each keeps a core busy the whole time: more steady load than a demo, which waits between its runs);
``--beside demos`` runs real demos instead. Launches must not time out under the load (the code
location loads without its heavy imports, gRPC calls get 180 s, run monitoring waits 300 s for a start).

Prints, per side, whether the demo finished with every calibration signed off, its wall time, and the
loaded wall time against the clean one measured in the same run. Exits 1 if a demo did not finish.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, parser, print_ratio, ratio

B2CAL = Path(sys.executable).with_name("b2cal")
BUSY_LOOP = "while True:\n    pass\n"


def demo_command(runs: int, processings: int, timeout_s: float) -> list[str]:
    exe = str(B2CAL) if B2CAL.exists() else "b2cal"
    return [exe, "demo", "--fresh", "--processings", str(processings), "--runs", str(runs),
            "--timeout", str(int(timeout_s))]  # fmt: skip


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B2CAL_", "DAGSTER_"))}
    env["B2CAL_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def run_demo(home: Path, command: list[str], timeout_s: float) -> tuple[bool, float, str]:
    """One demo; past the timeout it gets SIGTERM, on which it stops its own daemon."""
    start = time.perf_counter()
    log_path = home.with_suffix(".log")
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as out:
        demo = subprocess.Popen(command, env=clean_env(home), stdout=out, stderr=subprocess.STDOUT)
        try:
            demo.wait(timeout=timeout_s + 120)
        except subprocess.TimeoutExpired:
            demo.send_signal(signal.SIGTERM)
            demo.wait(timeout=120)
    log = log_path.read_text(errors="replace")
    ok = demo.returncode == 0 and "RESULT: every calibration signed off" in log
    return ok, time.perf_counter() - start, log


def start_hogs(kind: str, n: int, root: Path, command: list[str]) -> list[subprocess.Popen]:
    hogs = []
    for i in range(n):
        if kind == "busy":
            argv = [sys.executable, "-c", BUSY_LOOP]
            env = None
        else:
            home = root / f"beside{i}"
            argv, env = command, clean_env(home)
        quiet = subprocess.DEVNULL
        hogs.append(subprocess.Popen(argv, env=env, stdout=quiet, stderr=quiet, start_new_session=True))
    return hogs


def stop_hogs(hogs: list[subprocess.Popen]) -> None:
    """Each hog leads its own session (a demo's daemon and runs too): stop exactly those."""
    for hog in hogs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(hog.pid, signal.SIGTERM)
    for hog in hogs:
        try:
            hog.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(hog.pid, signal.SIGKILL)
            hog.wait(timeout=10)


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--beside", choices=["busy", "demos"], default="busy", help="what loads the machine")
    p.add_argument("--count", type=int, default=None, help="how many hogs (default 4, quick 2)")
    p.add_argument("--runs", type=int, default=6, help="runs per processing of the measured demo")
    p.add_argument("--keep", default=None, help="keep the demos' homes in this directory")
    args = p.parse_args()
    count = args.count if args.count is not None else (2 if args.quick else 4)
    timeout_s = 2400.0
    command = demo_command(args.runs, 1, timeout_s)
    root = Path(args.keep or tempfile.mkdtemp(prefix="b2cal-bench-load-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        clean_ok, clean_s, clean_log = run_demo(root / "clean", command, timeout_s)
        print(f"clean demo: finished {'yes' if clean_ok else 'no'}, {clean_s:.0f} s")
        hogs = start_hogs(args.beside, count, root, command)
        try:
            loaded_ok, loaded_s, loaded_log = run_demo(root / "loaded", command, timeout_s)
        finally:
            stop_hogs(hogs)
        what = "busy-loop processes" if args.beside == "busy" else "other demos"
        print(
            f"demo with {count} {what} beside it: finished {'yes' if loaded_ok else 'no'}, {loaded_s:.0f} s"
        )
        for name, ok, log in (("clean", clean_ok, clean_log), ("loaded", loaded_ok, loaded_log)):
            if not ok:
                print(f"--- the {name} demo did not finish:\n{log[-4000:]}")
        print_ratio(f"demo_wall_with_{count}_{args.beside}", "demo_wall_clean", ratio(loaded_s, clean_s), 1)
        return 0 if clean_ok and loaded_ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
