"""The framework's ``prompt.utils``: what scripts call to thin their input files.

``input_data`` maps a file path to the single-run ``IoV`` it belongs to, as in the framework. Random
choices use Python's ``random`` module, so a script that seeds it (``random.seed(1234)``) gets the
same files on every run, as with the framework.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

from b2cal_assets.domain.iov import ExpRun, IoV

__all__ = [
    "ExpRun",
    "IoV",
    "events_in_basf2_file",
    "filter_by_max_events_per_run",
    "filter_by_max_files_per_run",
    "filter_by_select_max_events_from_files",
    "group_files_by_iov",
]


def events_in_basf2_file(file_path: str) -> int:
    """Entries of the ``tree`` TTree of a basf2 ROOT file (read with uproot)."""
    try:
        import uproot  # imported here: only this helper of the shim reads ROOT files
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
    files_to_iov: Mapping[str, IoV],
    max_files_per_run: int = 1,
    min_events_per_file: int = 0,
    random_select: bool = False,
) -> dict[str, IoV]:
    """Keep at most ``max_files_per_run`` files per run, skipping files with fewer than
    ``min_events_per_file`` events; files in input order, or picked at random with ``random_select``."""
    candidates: dict[ExpRun, list[str]] = defaultdict(list)
    for path, iov in files_to_iov.items():
        candidates[ExpRun(iov[0], iov[1])].append(path)
    chosen: dict[ExpRun, list[str]] = {}
    for run, paths in candidates.items():
        remaining = list(paths)
        picked: list[str] = []
        while remaining and len(picked) < max_files_per_run:
            path = remaining.pop(random.randrange(len(remaining)) if random_select else 0)
            if min_events_per_file and events_in_basf2_file(path) < min_events_per_file:
                continue
            picked.append(path)
        if picked:
            chosen[run] = picked
    return {path: IoV(*run, *run) for run, paths in chosen.items() for path in paths}


def filter_by_max_events_per_run(
    files_to_iov: Mapping[str, IoV],
    max_events_per_run: int,
    random_select: bool = False,
    max_events_per_file: int = 0,
) -> dict[str, IoV]:
    """Add files of each run until ``max_events_per_run`` events are reached; empty files are skipped.

    With ``max_events_per_file`` a file counts for at most that many events (the collector reads no
    more of it); files in input order, or at random with ``random_select``. Runs left without files
    are dropped.
    """
    chosen: dict[str, IoV] = {}
    for iov, paths in sorted(group_files_by_iov(files_to_iov).items()):
        remaining = list(paths)
        total = 0
        while total < max_events_per_run and remaining:
            path = remaining.pop(random.randrange(len(remaining)) if random_select else 0)
            events = events_in_basf2_file(path)
            if not events:
                continue
            total += min(events, max_events_per_file) if max_events_per_file else events
            chosen[path] = iov
    return chosen


def filter_by_select_max_events_from_files(
    input_file_list: Sequence[str], select_max_events_from_files: int
) -> list[str]:
    """Files picked at random until together they hold ``select_max_events_from_files`` events.

    Returns them sorted, or ``[]`` when all files together hold fewer events; empty files are skipped.
    """
    remaining = list(input_file_list)
    selected: list[str] = []
    total = 0
    while total < select_max_events_from_files and remaining:
        path = remaining.pop(random.randrange(len(remaining)))
        events = events_in_basf2_file(path)
        if not events:
            continue
        total += events
        selected.append(path)
    return sorted(selected) if total >= select_max_events_from_files else []
