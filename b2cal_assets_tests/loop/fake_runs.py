"""Dagster's runs as the loop sees them, without Dagster: what the reconciliation rules are tested against."""

from __future__ import annotations

import itertools

from b2cal_assets.loop.reconcile import RunInfo
from b2cal_assets.loop.service import AUTO_USER


class FakeRuns:
    """Runs by key and id, made and moved by the test; the daemon's run-key rule is ``launch``."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.runs: dict[str, tuple[str, RunInfo, str]] = {}  # run id -> (run key, info, why it ended)
        self.started_keys: list[str] = []

    def add(self, key: str = "", status: str = "QUEUED", *, started: bool = False, why: str = "") -> str:
        run_id = f"run-{next(self._ids)}"
        self.runs[run_id] = (key, RunInfo(run_id, status, started), why)
        return run_id

    def set(self, run_id: str, status: str, *, started: bool | None = None, why: str = "") -> None:
        key, info, _ = self.runs[run_id]
        self.runs[run_id] = (key, RunInfo(run_id, status, info.started if started is None else started), why)

    def launch(self, request_key: str) -> str | None:
        """What the daemon does with a run request: a key it made a run for already is skipped."""
        existing = self.by_key(request_key)
        if existing is not None and not existing.not_created_yet:
            return None
        self.started_keys.append(request_key)
        return self.add(request_key, "QUEUED")

    # --- RunLookup ---
    def by_key(self, run_key: str) -> RunInfo | None:
        found = [info for key, info, _ in self.runs.values() if key == run_key]
        return found[-1] if found else None

    def by_id(self, run_id: str) -> RunInfo | None:
        entry = self.runs.get(run_id)
        return entry[1] if entry else None

    def why_ended(self, run_id: str) -> str:
        entry = self.runs.get(run_id)
        return entry[2] if entry else ""


def start_attempt(loop, runs: FakeRuns, launch, run_id: str):
    """The launched run starts: it records its attempt (taking over a held one, or resuming a dead one)."""
    runs.set(run_id, "STARTED", started=True)
    return loop.begin_attempt(
        launch.processing,
        launch.step,
        submitted_by=AUTO_USER,
        expert_config=launch.expert_config,
        job_config=launch.job_config,
        dagster_run_id=run_id,
        resume_run_ids=[launch.resume_run_id] if launch.resume_run_id else (),
    )


def finish(loop, runs: FakeRuns, ticket, run_id: str, constants: dict) -> None:
    """The run's calibration ends with ``constants`` as payloads, and the run succeeds."""
    import tempfile
    from pathlib import Path

    from b2cal_assets.caf.localdb import write_outputdb

    ticket.workdir.mkdir(parents=True, exist_ok=True)
    outputdb = Path(tempfile.mkdtemp(dir=ticket.workdir)) / "outputdb"
    iov = loop.processing_iov(ticket.processing)
    written = write_outputdb(outputdb, [], [(name, iov, values) for name, values in constants.items()])
    loop.finish_attempt(ticket, outputdb, written, iterations=1)
    runs.set(run_id, "SUCCESS")
