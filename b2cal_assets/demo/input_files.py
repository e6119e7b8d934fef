"""Choosing a calibration's input files from ``input_data`` the way prompt scripts do."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from b2cal_assets.domain.iov import ExpRun, IoV


def select_input_files(
    input_data: Mapping[str, Mapping[str, IoV]],
    data_names: Iterable[str],
    max_files_per_run: int | None = None,
) -> dict[str, ExpRun]:
    """Files of the given data names mapped to their run, at most ``max_files_per_run`` per run and
    data name (the first ones by path, so a rerun picks the same files)."""
    chosen: dict[str, ExpRun] = {}
    for name in data_names:
        per_run: dict[ExpRun, list[str]] = defaultdict(list)
        for path, iov in input_data.get(name, {}).items():
            iov = IoV(*iov)
            per_run[ExpRun(iov.exp_low, iov.run_low)].append(path)
        for exp_run, paths in sorted(per_run.items()):
            paths = sorted(paths)
            if max_files_per_run:
                paths = paths[: int(max_files_per_run)]
            for path in paths:
                chosen[path] = exp_run
    return chosen
