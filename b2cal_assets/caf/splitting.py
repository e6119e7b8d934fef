"""Splitting a calibration's input files into collector subjobs, the framework's way.

``max_collector_jobs`` spreads the files evenly over at most that many subjobs, larger ones first
(11 files, at most 4 subjobs: 3, 3, 3, 2); ``max_files_per_collector_job`` cuts chunks of that size.
Neither set means one file per subjob (the framework's default). Files are ordered by run, then
path, so subjobs are the same on every rerun and one run's files stay together.
"""

from __future__ import annotations

from collections.abc import Mapping

from b2cal_assets.domain.iov import ExpRun

__all__ = ["ordered_files", "split_files"]


def ordered_files(input_files: Mapping[str, ExpRun]) -> list[str]:
    """Files sorted by (exp, run, path)."""
    return sorted(input_files, key=lambda path: (tuple(input_files[path]), path))


def split_files(
    files: list[str],
    *,
    max_files_per_collector_job: int | None = None,
    max_collector_jobs: int | None = None,
) -> list[list[str]]:
    """Contiguous chunks of ``files`` (in the given order), one per collector subjob."""
    if max_files_per_collector_job is not None and max_collector_jobs is not None:
        raise ValueError("set max_files_per_collector_job or max_collector_jobs, not both")
    if not files:
        return []
    if max_collector_jobs is not None:
        if max_collector_jobs < 1:
            raise ValueError(f"max_collector_jobs must be at least 1, got {max_collector_jobs}")
        n_jobs = min(max_collector_jobs, len(files))
        base, extra = divmod(len(files), n_jobs)
        chunks, start = [], 0
        for i in range(n_jobs):
            size = base + (1 if i < extra else 0)
            chunks.append(files[start : start + size])
            start += size
        return chunks
    size = 1 if max_files_per_collector_job is None else max_files_per_collector_job
    if size < 1:
        raise ValueError(f"max_files_per_collector_job must be at least 1, got {size}")
    return [files[i : i + size] for i in range(0, len(files), size)]
