"""Each benchmark of issue 2 runs in its ``--quick`` mode, exits 0 and prints its RATIO lines.

Only that the benchmarks work is checked here; their numbers depend on the machine and are never
asserted (``make bench`` prints them).
"""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RATIO = re.compile(r"^RATIO (\S+) / (\S+) = (\S+) \(median of (\d+)")


def run_quick(
    name: str, timeout: float, args: tuple[str, ...] = ("--quick",)
) -> tuple[str, dict[tuple[str, str], float]]:
    env = {k: v for k, v in os.environ.items() if k not in ("B2CAL_DATABASE_URL", "B2CAL_CALIBRATIONS_DIR")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{name} {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    ratios = {}
    for line in proc.stdout.splitlines():
        match = RATIO.match(line)
        if match:
            assert int(match.group(4)) >= 1, line
            ratios[(match.group(1), match.group(2))] = float(match.group(3))
    return proc.stdout, ratios


def assert_measured(ratios: dict[tuple[str, str], float], expected: set[tuple[str, str]]) -> None:
    assert expected <= set(ratios), f"missing RATIO lines: {expected - set(ratios)}; got {sorted(ratios)}"
    for key in expected:
        assert math.isfinite(ratios[key]) and ratios[key] > 0, (key, ratios[key])


def test_collector_benchmark_compares_like_for_like():
    out, ratios = run_quick("bench_collector.py", timeout=300)
    assert_measured(
        ratios,
        {
            (f"{m}_{kind}_events_per_s", "numpy_in_memory_events_per_s")
            for m in ("caf_svd_time", "caf_top_pre")
            for kind in ("collector", "subjob_process")
        },
    )
    # the numpy baseline filled the same histograms as the real collectors
    assert "WARNING" not in out, out


def test_definitions_load_benchmark_prints_its_ratios():
    out, ratios = run_quick("bench_definitions_load.py", timeout=300)
    assert_measured(
        ratios,
        {
            ("load_10_calibrations", "empty_definitions"),
            ("load_50_calibrations", "empty_definitions"),
            ("load_50_calibrations", "load_10_calibrations"),
        },
    )
    assert "per-calibration cost:" in out


@pytest.mark.slow
def test_signoff_latency_benchmark_measures_both_hops():
    out, ratios = run_quick("bench_signoff_latency.py", timeout=600)
    assert_measured(
        ratios,
        {
            ("signoff_to_dependent_start", "stock_dagster_sensor_hop"),
            ("signoff_to_dependent_run_start", "stock_dagster_sensor_hop"),
            ("automatic_site_signoff_to_dependent_start", "stock_dagster_sensor_hop"),
            ("automatic_site_signoff_to_dependent_run_start", "stock_dagster_sensor_hop"),
        },
    )
    assert "stock hop 1:" in out and "b2cal bench_1:" in out and "b2cal via sensor bench_1:" in out, out


def test_fault_benchmark_reports_each_fault_against_a_clean_run():
    out, ratios = run_quick("bench_faults.py", timeout=300)
    faults = ("status_fails_3", "status_fails_6", "transient_10pct")
    assert_measured(ratios, {(f"{f}_wall", "clean_wall") for f in faults})
    assert "FAULT status_fails_3: survived yes, manual steps 0, batch jobs submitted 10 for 10 jobs" in out
    assert "FAULT status_fails_6: survived no, manual steps 1" in out  # one more than tolerated
    assert "FAULT transient_10pct: survived yes, manual steps 0, batch jobs submitted 11 for 10 jobs" in out


def test_scale_benchmark_measures_every_part_against_its_baseline():
    out, ratios = run_quick("bench_scale.py", timeout=900)  # two real daemons run a while in the rss part
    assert_measured(
        ratios,
        {
            ("definitions_load_12_calibrations", "stock_definitions_same_assets"),
            ("definitions_load_40_calibrations", "stock_definitions_same_assets"),
            ("register_files_time", "bare_executemany_time"),
            ("data_arrival_sensor_tick_p95", "stock_sensor_tick_p95"),
            ("loop_sensor_tick_p95", "stock_sensor_tick_p95"),
            ("b2cal_status_json", "b2cal_help"),
            ("status_page", "not_found_page"),
            ("code_location_rss", "stock_definitions_rss"),
            ("daemon_tree_rss", "stock_daemon_tree_rss"),
            ("daemon_process_rss", "stock_daemon_process_rss"),
            ("loop_overhead", "critical_path"),
        },
    )
    # every generated calibration loaded (the benchmark exits non-zero otherwise) and the size is printed
    assert "MB per processing" in out, out
