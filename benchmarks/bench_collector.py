"""Collector throughput (events/s) of real demo collectors, against numpy on the same arrays in memory.

    .venv/bin/python benchmarks/bench_collector.py            # 4 runs x 25,000 events, 5 repeats
    .venv/bin/python benchmarks/bench_collector.py --quick    # 1 run x 3,000 events, 1 repeat

The synthetic detector's generator (``b2cal_assets/demo/generator.py``) writes di-muon skims (ROOT files,
three per run). Two demo calibration scripts are loaded the way a collector subjob loads them (import
shim, ``get_calibrations``): ``caf_svd_time`` (collector ``svd.collect_time``) and ``caf_top_pre``
(``top.collect_module_t0``). Per repeat, interleaved:

- collector: the script's collector called on every file (uproot read + histogram), in this process;
- baseline: the same branches, read once beforehand into memory, turned into the same histogram with
  plain numpy (``np.histogram2d``); its totals are compared with the collector's, so both did the same work;
- subjob: one ``python -m b2cal_assets.caf.subjob SPEC.json`` process over all files (what a batch job
  runs: interpreter start, script load, collect, write ``collected.npz``).

RATIO lines: collector events/s over baseline events/s (below 1: what reading ROOT files and the
framework cost), and the same for the subjob process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, describe, median, parser, print_ratio, ratio, say

from b2cal_assets.caf.framework import CollectorContext, Conditions
from b2cal_assets.caf.subjob import SubjobSpec, call_get_calibrations, load_script, script_context
from b2cal_assets.demo import detector as det
from b2cal_assets.demo import generator
from b2cal_assets.demo.skim_io import read_tree
from b2cal_assets.demo.subsystems import svd, top
from b2cal_assets.domain.iov import ExpRun, IoV

CALIBRATIONS_DIR = REPO / "b2cal_assets" / "demo" / "calibrations"
TAG = "mumu_tight_or_highm_calib"


def _svd_numpy(a: dict[str, np.ndarray]) -> np.ndarray:
    values = a["svd_time"] - a["event_t0"][:, None]
    rows = a["svd_sensor"]
    bins = [np.arange(det.SVD_SENSORS + 1) - 0.5, svd.TIME_EDGES]
    return np.histogram2d(rows.ravel(), values.ravel(), bins=bins)[0]


def _top_numpy(a: dict[str, np.ndarray]) -> np.ndarray:
    values = a["top_time"] - a["top_expected"][:, None]
    rows = np.broadcast_to(a["top_module"][:, None], values.shape)
    bins = [np.arange(det.TOP_MODULES + 1) - 0.5, top.MODULE_EDGES]
    return np.histogram2d(rows.ravel(), values.ravel(), bins=bins)[0]


# (script module, calibration name, the branches it reads, the collector's output array, numpy baseline)
CASES = (
    ("caf_svd_time", "svd_time", ("svd_sensor", "svd_time", "event_t0"), "time", _svd_numpy),
    ("caf_top_pre", "top_module_t0", ("top_module", "top_time", "top_expected"), "residual", _top_numpy),
)


class Case:
    """One demo calibration's collector, loaded from its script like a subjob loads it."""

    def __init__(self, module: str, calibration: str, branches, output: str, baseline, files) -> None:
        self.module_name, self.calibration, self.branches, self.output = module, calibration, branches, output
        self.baseline = baseline
        self.script = CALIBRATIONS_DIR / f"{module}.py"
        self.input_data = {TAG: {f.path: IoV(f.exp, f.run, f.exp, f.run) for f in files}}
        self.iov = IoV(1, min(f.run for f in files), 1, max(f.run for f in files))
        self.module = load_script(self.script, CALIBRATIONS_DIR)
        self.expert_config = dict(self.module.settings.expert_config)
        with script_context(self.script, CALIBRATIONS_DIR):
            cals = call_get_calibrations(self.module, self.input_data, self.iov, self.expert_config)
        self.cal = next(c for c in cals if c.name == calibration)
        self.files = sorted(self.cal.input_files)
        limit = int(self.expert_config.get("max_events_per_file") or 0)
        by_path = {f.path: f.n_events for f in files}
        self.events = sum(min(by_path[p], limit) if limit else by_path[p] for p in self.files)

    def collect(self) -> np.ndarray:
        total = None
        with script_context(self.script, CALIBRATIONS_DIR):
            for path in self.files:
                ctx = CollectorContext(
                    iteration=0,
                    exp_run=ExpRun(*self.cal.input_files[path]),
                    conditions=Conditions(),
                    expert_config=self.expert_config,
                    requested_iov=self.iov,
                )
                hist = np.asarray(self.cal.collector(path, ctx)[self.output])
                total = hist if total is None else total + hist
        return total

    def preload(self) -> list[dict[str, np.ndarray]]:
        limit = self.expert_config.get("max_events_per_file")
        return [
            read_tree(path, generator.EVENTS_TREE, self.branches, max_events=limit) for path in self.files
        ]

    def in_memory(self, arrays: list[dict[str, np.ndarray]]) -> np.ndarray:
        total = None
        for a in arrays:
            hist = self.baseline(a)
            total = hist if total is None else total + hist
        return total

    def subjob(self, workdir: Path) -> float:
        workdir.mkdir(parents=True, exist_ok=True)
        spec = SubjobSpec(
            script_file=self.script,
            calibrations_dir=CALIBRATIONS_DIR,
            calibration=self.calibration,
            input_data=self.input_data,
            requested_iov=self.iov,
            expert_config=self.expert_config,
            iteration=0,
            files=self.files,
            output=workdir / "collected.npz",
        )
        (workdir / "spec.json").write_text(spec.to_json())
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "b2cal_assets.caf.subjob", str(workdir / "spec.json")],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"collector subjob of {self.calibration} failed:\n{proc.stderr[-3000:]}")
        return elapsed


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, help="runs to generate (default 4, quick 1)")
    p.add_argument("--events-per-run", type=int, help="di-muon events per run (default 25000, quick 3000)")
    p.add_argument("--repeats", type=int, help="repeats (default 5, quick 1)")
    p.add_argument("--subjob-repeats", type=int, help="subjob processes per collector (default 3, quick 1)")
    args = p.parse_args()
    runs = args.runs or (1 if args.quick else 4)
    events = args.events_per_run or (3000 if args.quick else 25000)
    repeats = args.repeats or (1 if args.quick else 5)
    subjob_repeats = args.subjob_repeats if args.subjob_repeats is not None else (1 if args.quick else 3)

    with tempfile.TemporaryDirectory(prefix="bench_collector_") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        files = generator.generate(
            root / "data",
            runs=runs,
            events_per_run=events,
            data_tags=[TAG],
            small_runs=(),
            seed=3,
            run_info=lambda _i: generator.default_run_info(0),  # every run a good physics run
        )
        size = sum(f.size_bytes for f in files) / 1e6
        say(f"generated {len(files)} skim files ({size:.1f} MB) in {time.perf_counter() - start:.1f} s")
        for module, calibration, branches, output, baseline in CASES:
            case = Case(module, calibration, branches, output, baseline, files)
            arrays = case.preload()
            case.collect()  # warm-up: imports, page cache
            collector_s, memory_s = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                collected = case.collect()
                collector_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                reference = case.in_memory(arrays)
                memory_s.append(time.perf_counter() - t0)
            if collected.shape != reference.shape or not np.allclose(collected, reference):
                say(
                    f"WARNING {module}: the collector's histogram ({collected.sum():.0f} entries) differs from "
                    f"the numpy baseline's ({reference.sum():.0f}); the comparison is not like for like"
                )
            subjob_s = [case.subjob(root / "subjobs" / f"{calibration}_{i}") for i in range(subjob_repeats)]
            n = case.events
            say(
                f"\n{module} ({calibration}): {len(case.files)} files, {n} events, {collected.sum():.0f} entries"
            )
            say(describe("  collector in process", [n / t for t in collector_s], unit="events/s"))
            say(describe("  numpy on in-memory arrays", [n / t for t in memory_s], unit="events/s"))
            if subjob_s:
                say(describe("  collector subjob process", [n / t for t in subjob_s], unit="events/s"))
            collector_rate, memory_rate = n / median(collector_s), n / median(memory_s)
            print_ratio(
                f"{module}_collector_events_per_s",
                "numpy_in_memory_events_per_s",
                ratio(collector_rate, memory_rate),
                repeats,
            )
            if subjob_s:
                print_ratio(
                    f"{module}_subjob_process_events_per_s",
                    "numpy_in_memory_events_per_s",
                    ratio(n / median(subjob_s), memory_rate),
                    subjob_repeats,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
