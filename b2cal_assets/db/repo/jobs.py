"""Collector subjobs of an attempt on a batch backend."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from b2cal_assets.db.errors import InvalidValue, NotFound
from b2cal_assets.db.models import Job
from b2cal_assets.db.repo.attempts import get_attempt
from b2cal_assets.db.repo.rows import check_fields

SETTABLE = ("backend_job_id", "state", "exit_code", "tries", "workdir", "started_at", "finished_at")


def record_jobs(s: Session, attempt_id: int, backend: str, jobs: Iterable[Mapping[str, Any]]) -> list[Job]:
    """Record (or update, matched by ``name``) the attempt's subjobs; each mapping has ``name`` and any of
    backend_job_id, state, exit_code, tries, workdir, started_at, finished_at (UTC datetimes). Recording the same jobs again after a resume is safe."""
    get_attempt(s, attempt_id)
    existing = {job.name: job for job in list_jobs(s, attempt_id)}
    recorded = []
    for spec in jobs:
        fields = dict(spec)
        name = fields.pop("name", None)
        if not name:
            raise InvalidValue(f"every job needs a name; got {spec!r}")
        check_fields(Job, fields, SETTABLE)
        job = existing.get(name)
        if job is None:
            job = existing[name] = Job(attempt_id=attempt_id, name=name, backend=backend, **fields)
            s.add(job)
        else:
            for key, value in fields.items():
                setattr(job, key, value)
        recorded.append(job)
    s.flush()
    return recorded


def utc_from_epoch(epoch: float | None) -> datetime | None:
    """A wrapper's epoch seconds as the naive UTC datetime the job table stores; ``None`` stays ``None``."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(float(epoch), UTC).replace(tzinfo=None)


def list_jobs(s: Session, attempt_id: int) -> list[Job]:
    return list(s.scalars(select(Job).where(Job.attempt_id == attempt_id).order_by(Job.id)))


def update_job(s: Session, job_id: int, **fields: Any) -> Job:
    check_fields(Job, fields, SETTABLE)
    job = s.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    for key, value in fields.items():
        setattr(job, key, value)
    s.flush()
    return job
