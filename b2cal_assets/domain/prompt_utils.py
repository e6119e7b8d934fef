"""The part of the framework's ``prompt.utils`` that scripts call to thin their input files.

``input_data`` maps a file path to the single-run ``IoV`` it belongs to, as in the framework.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping

from b2cal_assets.domain.iov import ExpRun, IoV

__all__ = [
    "ExpRun",
    "IoV",
    "events_in_basf2_file",
    "filter_by_max_events_per_run",
    "filter_by_max_files_per_run",
    "group_files_by_iov",
]


def events_in_basf2_file(file_path: str) -> int:
    """Entries of the ``tree`` TTree of a basf2 ROOT file (read with uproot)."""
    try:
        import uproot
    except ImportError:  # pragma: no cover - uproot is a dependency
        raise NotImplementedError("events_in_basf2_file needs uproot, which is not installed") from None
    with uproot.open(file_path) as handle:
        if "tree" not in handle:
            raise NotImplementedError(
                f"events_in_basf2_file counts the entries of the TTree 'tree' of basf2 files; {file_path} has "
                f"none (keys: {', '.join(handle.keys()) or 'none'}). Count events in your script instead."
            )
        return int(handle["tree"].num_entries)


def group_files_by_iov(files_to_iov: Mapping[str, IoV]) -> dict[IoV, list[str]]:
    """Invert ``{file: IoV}`` to ``{IoV: [files]}``, keeping file order."""
    grouped: dict[IoV, list[str]] = {}
    for path, iov in files_to_iov.items():
        grouped.setdefault(IoV(*iov), []).append(path)
    return grouped


def filter_by_max_files_per_run(
    files_to_iov: Mapping[str, IoV], max_files_per_run: int = 1, min_events_per_file: int = 0
) -> dict[str, IoV]:
    """Keep at most ``max_files_per_run`` files per run (in input order), skipping files that are too small."""
    per_run: dict[ExpRun, list[str]] = defaultdict(list)
    for path, iov in files_to_iov.items():
        run = ExpRun(iov[0], iov[1])
        if len(per_run[run]) >= max_files_per_run:
            continue
        if min_events_per_file and events_in_basf2_file(path) < min_events_per_file:
            continue
        per_run[run].append(path)
    return {path: IoV(*run, *run) for run, paths in per_run.items() for path in paths}


def filter_by_max_events_per_run(
    files_to_iov: Mapping[str, IoV], max_events_per_run: int, random_select: bool = False
) -> dict[str, IoV]:
    """Add files of each run until ``max_events_per_run`` events are reached; empty files are skipped."""
    chosen: dict[str, IoV] = {}
    for iov, paths in sorted(group_files_by_iov(files_to_iov).items()):
        remaining = list(paths)
        total = 0
        while total < max_events_per_run and remaining:
            path = remaining.pop(random.randrange(len(remaining)) if random_select else 0)
            events = events_in_basf2_file(path)
            if events:
                total += events
                chosen[path] = iov
    return chosen
