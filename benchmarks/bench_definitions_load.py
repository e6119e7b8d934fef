"""How long Dagster's definitions take to load for 50 and 500 calibration scripts.

    .venv/bin/python benchmarks/bench_definitions_load.py            # 50 and 500 scripts, 3 repeats
    .venv/bin/python benchmarks/bench_definitions_load.py --quick    # 10 and 50 scripts, 1 repeat

Writes two temporary directories of generated calibration scripts in the framework's form (``settings =
CalibrationSettings(...)``, ``get_calibrations``) with a random but acyclic dependency graph declared
the way experts do (``from prompt.calibrations.cal_0007 import settings as cal_0007``). Each measurement
is a fresh ``python`` subprocess (no cache helps) that imports dagster and ``b2cal_assets.defs``
(timed and printed, not counted), then times ``build_definitions(dir)`` plus ``resolve_asset_graph()``. The baseline is the same subprocess building
and resolving an empty ``dg.Definitions()``. Repeats are interleaved (empty, small, large, empty, ...)
so that load on the shared machine hits all three alike.

Output: medians per size, the per-calibration cost ((large - small) / (large_n - small_n)), and RATIO
lines: small/empty, large/empty and large/small (ideal linear scaling: large_n/small_n = 10).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, describe, median, parser, print_ratio, ratio, say

TAGS = ("hadron_calib", "bhabha_all_calib", "mumu_tight_or_highm_calib", "cosmic_calib")

SCRIPT = """\
from prompt import CalibrationSettings
{imports}

settings = CalibrationSettings(
    name="{name}",
    expert_username="expert_{index}",
    description="Generated calibration {index} for the definitions load benchmark",
    input_data_formats=["raw"],
    input_data_names=["{tag}"],
    input_data_filters={{"{tag}": []}},
    depends_on=[{depends}],
    expert_config={{"max_files_per_run": 2, "threshold": {index}.5}},
    produced_payloads=["Payload{index}"],
)


def get_calibrations(input_data, **kwargs):
    return []
"""

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import dagster as dg
t1 = time.perf_counter()
kind, directory = sys.argv[1], sys.argv[2]
if kind != "empty":
    from b2cal_assets.defs.definitions import build_definitions
t2 = time.perf_counter()
defs = dg.Definitions() if kind == "empty" else build_definitions(directory)
graph = defs.resolve_asset_graph()
t3 = time.perf_counter()
print(json.dumps({"import_dagster_s": t1 - t0, "import_b2cal_s": t2 - t1, "build_s": t3 - t2,
                  "assets": len(list(graph.get_all_asset_keys()))}))
"""


def write_scripts(directory: Path, n: int, seed: int) -> int:
    """``n`` scripts; script i depends on up to 3 random earlier ones. Returns the number of edges."""
    rng = random.Random(seed)
    directory.mkdir(parents=True)
    edges = 0
    for i in range(n):
        name = f"cal_{i:04d}"
        deps = sorted(rng.sample(range(i), k=min(i, rng.randint(0, 3))))
        edges += len(deps)
        names = [f"cal_{d:04d}" for d in deps]
        imports = "\n".join(f"from prompt.calibrations.{d} import settings as {d}" for d in names)
        text = SCRIPT.format(
            imports=imports, name=name, index=i, tag=TAGS[i % len(TAGS)], depends=", ".join(names)
        )
        (directory / f"{name}.py").write_text(text)
    return edges


def load_once(kind: str, directory: str, home: Path) -> dict:
    env = {
        **os.environ,
        "B2CAL_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("B2CAL_CALIBRATIONS_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, directory], env=env, capture_output=True, text=True, cwd=REPO
    )
    if proc.returncode != 0:
        raise SystemExit(f"loading {kind} definitions failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = parser(__doc__)
    p.add_argument(
        "--sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"), help="default 50 500 (quick: 10 50)"
    )
    p.add_argument("--repeats", type=int, help="fresh subprocesses per size (default 3, quick 1)")
    args = p.parse_args()
    small_n, large_n = args.sizes or ((10, 50) if args.quick else (50, 500))
    repeats = args.repeats or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory(prefix="bench_defs_") as tmp:
        root = Path(tmp)
        (root / "home" / "dagster").mkdir(parents=True)
        dirs = {"empty": ""}
        for label, n in (("small", small_n), ("large", large_n)):
            edges = write_scripts(root / f"scripts_{n}", n, seed=n)
            dirs[label] = str(root / f"scripts_{n}")
            say(f"{n} generated calibration scripts, {edges} dependency edges")
        expected = {"small": small_n, "large": large_n}
        samples: dict[str, list[float]] = {k: [] for k in dirs}
        imports: list[float] = []
        b2cal_imports: list[float] = []
        for r in range(repeats):
            for kind in ("empty", "small", "large"):
                result = load_once("empty" if kind == "empty" else "b2cal", dirs[kind], root / "home")
                if kind != "empty" and result["assets"] < 2 * expected[kind]:
                    raise SystemExit(
                        f"only {result['assets']} assets for {expected[kind]} scripts: did some scripts fail to load?"
                    )
                samples[kind].append(result["build_s"])
                imports.append(result["import_dagster_s"])
                if kind != "empty":
                    b2cal_imports.append(result["import_b2cal_s"])
                say(
                    f"  repeat {r + 1}: {kind:5s} build+resolve {result['build_s']:.3f} s ({result['assets']} assets)"
                )

    say(describe("import dagster (not counted)", imports))
    say(describe("import b2cal_assets.defs.definitions (not counted)", b2cal_imports))
    say(describe("empty dg.Definitions()", samples["empty"]))
    say(describe(f"{small_n} calibrations", samples["small"]))
    say(describe(f"{large_n} calibrations", samples["large"]))
    empty, small, large = (median(samples[k]) for k in ("empty", "small", "large"))
    per_cal = (large - small) / (large_n - small_n)
    say(f"per-calibration cost: {per_cal * 1000:.2f} ms (from the {large_n} - {small_n} difference)")
    say(
        f"per-calibration cost at {large_n}: {(large - empty) / large_n * 1000:.2f} ms (total over empty / n)"
    )
    print_ratio(f"load_{small_n}_calibrations", "empty_definitions", ratio(small, empty), repeats)
    print_ratio(f"load_{large_n}_calibrations", "empty_definitions", ratio(large, empty), repeats)
    print_ratio(
        f"load_{large_n}_calibrations",
        f"load_{small_n}_calibrations",
        ratio(large, small),
        repeats,
        note=f"linear would be {large_n / small_n:.0f}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
