"""What every demo validation script does: read the job's outputdb, plot the constants against the
truth and the nominal values, and say whether they are within tolerance.

On the synthetic detector the truth is known, so "passed" means every payload is finite and within
``truth.TOLERANCES``; the plots are what an expert would look at. The scripts run the framework's
way (as programs, ``run_validation(*sys.argv[1:])``): plots go to ``plots/`` in the working directory
and ``write_result`` leaves the verdict in ``validation_result.json`` and as the exit code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from b2cal_assets.caf.localdb import read_entries
from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.demo import truth
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.outputdb import payload_filename

PLOTS_DIR = "plots"
RESULT_FILE = "validation_result.json"


def load_outputdb(
    job_path: str | Path, payload_names: Sequence[str]
) -> dict[str, list[tuple[IoV, dict[str, np.ndarray]]]]:
    """The payloads of ``<job_path>/outputdb`` by name, each as ``(iov, constants)`` in revision order."""
    outputdb = Path(job_path) / "outputdb"
    found: dict[str, list[tuple[IoV, dict[str, np.ndarray]]]] = {name: [] for name in payload_names}
    for entry in sorted(read_entries(outputdb), key=lambda e: (e.name, e.revision)):
        if entry.name in found:
            found[entry.name].append(
                (entry.iov, read_payload(outputdb / payload_filename(entry.name, entry.revision)))
            )
    return found


def validate_payloads(
    job_path: str | Path,
    payload_names: Sequence[str],
    *,
    calibration: str,
    image_shapes: Mapping[str, tuple[int, int]] | None = None,
    plots_dir: Path | str = PLOTS_DIR,
) -> dict[str, Any]:
    """Plot each payload (one PNG per payload) into ``plots_dir`` (relative: to the working directory,
    as the framework's validations do) and check its values."""
    job_path = Path(job_path)
    plots_dir = Path(plots_dir).resolve()
    plots_dir.mkdir(parents=True, exist_ok=True)
    payloads = load_outputdb(job_path, payload_names)
    missing = [name for name, sets in payloads.items() if not sets]
    plots: list[str] = []
    metrics: dict[str, float] = {}
    failures: list[str] = [f"{name} missing from {job_path / 'outputdb'}" for name in missing]
    for name, sets in payloads.items():
        if not sets:
            continue
        for iov, constants in sets:
            label = name if len(sets) == 1 else f"{name}[{iov}]"
            for key, value in truth.deviation(name, constants).items():
                metrics[f"{label}.{key}"] = value
                metrics[f"{name}.{key}.worst"] = max(metrics.get(f"{name}.{key}.worst", 0.0), value)
            if not truth.within_tolerance(name, constants):
                failures.append(f"{label} outside tolerance {truth.TOLERANCES[name]}")
        shape = (image_shapes or {}).get(name)
        plots.append(str(_plot_payload(plots_dir, calibration, name, sets, shape)))
    passed = not failures
    checked = ", ".join(f"{n} ({len(s)} IoV{'s' if len(s) != 1 else ''})" for n, s in payloads.items() if s)
    summary = f"{calibration}: " + (
        "all payloads within tolerance: " + checked if passed else "; ".join(failures)
    )
    return {"plots": plots, "passed": passed, "summary": summary, "metrics": metrics}


def _plot_payload(
    plots_dir: Path,
    calibration: str,
    name: str,
    sets: list[tuple[IoV, dict[str, np.ndarray]]],
    image_shape: tuple[int, int] | None,
) -> Path:
    # matplotlib when a plot is made (about a second): the code location loads the validation scripts
    # for their settings only
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    true_values = truth.TRUTH[name]
    nominal = truth.NOMINAL[name]
    keys = list(true_values)
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 3.2 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=True):
        want = np.asarray(true_values[key], dtype=float).reshape(-1)
        if image_shape is not None:
            got = np.asarray(sets[-1][1].get(key, np.zeros_like(want)), dtype=float)
            image = ax.imshow(
                got.reshape(image_shape), aspect="auto", interpolation="nearest", cmap="viridis"
            )
            wrong = np.flatnonzero(got.reshape(-1) != want)
            ax.scatter(
                wrong % image_shape[1],
                wrong // image_shape[1],
                marker="x",
                color="red",
                label="differs from truth",
            )
            fig.colorbar(image, ax=ax, label=key)
            ax.set_xlabel("wire in layer")
            ax.set_ylabel("layer")
            ax.legend(loc="upper right", fontsize="small")
            continue
        x = np.arange(want.size)
        ax.plot(x, want, "k--", label="truth")
        ax.plot(x, np.asarray(nominal[key], dtype=float).reshape(-1), ":", color="grey", label="nominal")
        for iov, constants in sets:
            if key in constants:
                got = np.asarray(constants[key], dtype=float).reshape(-1)
                ax.plot(x[: got.size], got, "o", markersize=3, label=f"IoV {iov}")
        ax.set_ylabel(key)
        ax.set_xlabel("index" if want.size > 1 else "")
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(f"{calibration}: {name} (tolerance {truth.TOLERANCES[name]})")
    fig.tight_layout()
    path = plots_dir / f"{name}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_result(result: Mapping[str, Any]) -> int:
    """Leave ``result`` in ``validation_result.json`` (working directory); the exit code: 0 iff passed."""
    Path(RESULT_FILE).write_text(json.dumps(dict(result), indent=2, default=float))
    print(result.get("summary", ""))
    return 0 if result.get("passed") else 1
