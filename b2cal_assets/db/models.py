"""Tables of the calibration database. They reach a database only through Alembic (``migrations/``)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from b2cal_assets.domain.states import AttemptState, CalibrationState, ProcessingState, SignoffDecision

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def state_column(enum: type[StrEnum], name: str, length: int) -> Enum:
    """A non-native enum: a string column of the enum's values, with a CHECK constraint on every engine."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Site(Base):
    """A calibration centre: where jobs run, where files live, and how payloads are signed off."""

    __tablename__ = "site"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    backend: Mapped[str] = mapped_column(String(32), default="local")
    backend_args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    storage_root: Mapped[str] = mapped_column(String(1024), default="")
    path_prefix: Mapped[str] = mapped_column(String(256), default="")
    signoff_policy: Mapped[str] = mapped_column(String(16), default="automatic")  # automatic | manual
    hold_until_deadline: Mapped[bool] = mapped_column(default=False)
    runner: Mapped[str] = mapped_column(String(16), default="b2cal")  # b2cal | framework (domain/site_runner.py)
    runner_args: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the framework's setup, backend, heartbeat
    # a remote site: its scheduler commands run on submit_host (user@host:port) over SSH
    submit_host: Mapped[str] = mapped_column(String(300), default="", server_default="")
    ssh_key: Mapped[str] = mapped_column(String(1024), default="", server_default="")  # empty: the agent
    known_hosts: Mapped[str] = mapped_column(String(1024), default="", server_default="")
    remote_root: Mapped[str] = mapped_column(String(1024), default="", server_default="")
    remote_python: Mapped[str] = mapped_column(String(1024), default="", server_default="")


class Processing(Base):
    """One request to calibrate a bucket of runs; its name is the Dagster partition key (<= 64 chars)."""

    __tablename__ = "processing"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="prompt")  # prompt | reprocessing
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    exp_low: Mapped[int] = mapped_column(Integer)
    run_low: Mapped[int] = mapped_column(Integer)
    exp_high: Mapped[int] = mapped_column(Integer)
    run_high: Mapped[int] = mapped_column(Integer)
    global_tags: Mapped[list[Any]] = mapped_column(default=list)
    window_hours: Mapped[float] = mapped_column(default=48.0)
    state: Mapped[ProcessingState] = mapped_column(
        state_column(ProcessingState, "processing_state", 16), default=ProcessingState.OPEN
    )
    staging_due: Mapped[bool] = mapped_column(default=False)  # finished; the staging sensor exports its tag
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    site: Mapped[Site] = relationship(lazy="joined")


class Run(Base):
    """Run metadata that ``input_data_filters`` select on."""

    __tablename__ = "run"
    __table_args__ = (UniqueConstraint("exp", "run", name="uq_run_exp_run"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    exp: Mapped[int] = mapped_column(Integer)
    run: Mapped[int] = mapped_column(Integer)
    run_type: Mapped[str] = mapped_column(String(16), default="physics")
    magnet: Mapped[str] = mapped_column(String(8), default="On")
    beam_energy: Mapped[str] = mapped_column(String(16), default="4S")
    data_quality: Mapped[str] = mapped_column(String(32), default="Good")
    duration_minutes: Mapped[float] = mapped_column(default=60.0)


class CatalogFile(Base):
    """A skim (or cDST) file of one run and data tag; ``path`` is its location at the storage root."""

    __tablename__ = "catalog_file"
    __table_args__ = (Index("ix_catalog_file_tag_run", "data_tag", "run_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"))
    data_tag: Mapped[str] = mapped_column(String(64))
    data_format: Mapped[str] = mapped_column(String(8), default="raw")  # raw | cdst | mdst | udst
    path: Mapped[str] = mapped_column(String(768), unique=True)
    n_events: Mapped[int] = mapped_column(BigInteger, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    processing_id: Mapped[int | None] = mapped_column(ForeignKey("processing.id"), default=None)  # cDSTs only
    registered_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # from a data source (Rucio): the DID, its adler32, and a flag when the source stopped vouching for it
    did: Mapped[str | None] = mapped_column(String(512), default=None, index=True)
    checksum: Mapped[str | None] = mapped_column(String(16), default=None)
    flag: Mapped[str | None] = mapped_column(String(16), default=None, index=True)  # missing | checksum_changed
    flag_detail: Mapped[str] = mapped_column(String(512), default="")
    flagged_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    run: Mapped[Run] = relationship(lazy="joined")


class Replica(Base):
    """Where a catalog file can be read at a site (a local path or a ``root://`` URL)."""

    __tablename__ = "replica"
    __table_args__ = (UniqueConstraint("file_id", "site_id", name="uq_replica_file_site"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("catalog_file.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    url: Mapped[str] = mapped_column(String(1024))


class CatalogSource(Base):
    """A data source feeding the catalog for one site (Rucio at its RSE): its cursor and its health."""

    __tablename__ = "catalog_source"
    __table_args__ = (UniqueConstraint("site_id", "kind", name="uq_catalog_source_site_kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    kind: Mapped[str] = mapped_column(String(16), default="rucio")
    endpoint: Mapped[str] = mapped_column(String(512), default="")  # host and RSE, for the status
    updated_after: Mapped[datetime | None] = mapped_column(DateTime, default=None)  # incremental cursor
    last_full_scan_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    last_ok_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in a row
    last_error: Mapped[str] = mapped_column(String(512), default="")
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)  # backoff
    site: Mapped[Site] = relationship(lazy="joined")


class ProcessingCalibration(Base):
    """A calibration's place in one processing: its state, its expert, whether it is excluded."""

    __tablename__ = "processing_calibration"
    __table_args__ = (UniqueConstraint("processing_id", "calibration", name="uq_processing_calibration"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    processing_id: Mapped[int] = mapped_column(ForeignKey("processing.id"))
    calibration: Mapped[str] = mapped_column(String(64))
    state: Mapped[CalibrationState] = mapped_column(
        state_column(CalibrationState, "calibration_state", 16), default=CalibrationState.WAITING
    )
    expert_username: Mapped[str] = mapped_column(String(64), default="")
    excluded: Mapped[bool] = mapped_column(default=False)
    window_opened_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    deadline: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # part of the run keys of the loop's runs; raised when the loop launches the step again (loop/reconcile.py)
    launch_generation: Mapped[int] = mapped_column(Integer, default=0)
    relaunches: Mapped[int] = mapped_column(Integer, default=0)  # of the current submission, bounded
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic locking
    __mapper_args__ = {"version_id_col": version}


class Attempt(Base):
    """One run of a calibration in a processing: who submitted it, with which settings, how it ended."""

    __tablename__ = "attempt"
    __table_args__ = (UniqueConstraint("processing_id", "calibration", "number", name="uq_attempt_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    processing_id: Mapped[int] = mapped_column(ForeignKey("processing.id"))
    calibration: Mapped[str] = mapped_column(String(64))
    number: Mapped[int] = mapped_column(Integer)
    submitted_by: Mapped[str] = mapped_column(String(64))  # a user name, or "auto" for the deadline default
    expert_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    job_config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # filters, splitting, backend args
    state: Mapped[AttemptState] = mapped_column(
        state_column(AttemptState, "attempt_state", 16), default=AttemptState.SUBMITTED
    )
    iterations: Mapped[int] = mapped_column(Integer, default=0)
    workdir: Mapped[str] = mapped_column(String(1024), default="")
    dagster_run_id: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    resumes: Mapped[int] = mapped_column(Integer, default=0)  # automatic resumes after its run died
    submitted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class Job(Base):
    """A collector subjob of an attempt on a batch backend."""

    __tablename__ = "job"
    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempt.id"))
    name: Mapped[str] = mapped_column(String(128))
    backend: Mapped[str] = mapped_column(String(32))
    backend_job_id: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    workdir: Mapped[str] = mapped_column(String(1024), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # the job's own start and end (UTC) from its wrapper: the run without the batch queue's wait
    started_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class Signoff(Base):
    """An accept or reject of an attempt's payloads, automatic or by a person."""

    __tablename__ = "signoff"
    id: Mapped[int] = mapped_column(primary_key=True)
    processing_id: Mapped[int] = mapped_column(ForeignKey("processing.id"))
    calibration: Mapped[str] = mapped_column(String(64))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempt.id"), default=None)
    decision: Mapped[SignoffDecision] = mapped_column(state_column(SignoffDecision, "signoff_decision", 8))
    automatic: Mapped[bool] = mapped_column(default=False)
    by: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Payload(Base):
    """One payload file of a calibration in a processing; an upload adds a new revision, never overwrites."""

    __tablename__ = "payload"
    __table_args__ = (
        UniqueConstraint("processing_id", "name", "revision", name="uq_payload_revision"),
        Index("ix_payload_processing_calibration", "processing_id", "calibration"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    processing_id: Mapped[int] = mapped_column(ForeignKey("processing.id"))
    calibration: Mapped[str] = mapped_column(String(64))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempt.id"), default=None)
    name: Mapped[str] = mapped_column(String(128))
    revision: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(32))  # md5 hex
    exp_low: Mapped[int] = mapped_column(Integer)
    run_low: Mapped[int] = mapped_column(Integer)
    exp_high: Mapped[int] = mapped_column(Integer)
    run_high: Mapped[int] = mapped_column(Integer)
    file: Mapped[str] = mapped_column(String(1024))
    source: Mapped[str] = mapped_column(String(16), default="job")  # job | upload
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    superseded: Mapped[bool] = mapped_column(default=False)


class CondbTag(Base):
    """A processing's staging global tag in the conditions database: whether an upload is due, how it went."""

    __tablename__ = "condb_tag"
    __table_args__ = (UniqueConstraint("processing_id", name="uq_condb_tag_processing_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    processing_id: Mapped[int] = mapped_column(ForeignKey("processing.id"))
    name: Mapped[str] = mapped_column(String(128))
    condb_id: Mapped[int | None] = mapped_column(Integer, default=None)  # globalTagId on the server
    state: Mapped[str] = mapped_column(String(16), default="")  # the tag's state as last seen there
    due: Mapped[bool] = mapped_column(default=False)  # the upload sensor is to (re)try
    outcome: Mapped[str] = mapped_column(String(16), default="")  # uploaded|unavailable|refused|problems
    failures: Mapped[int] = mapped_column(Integer, default=0)  # unreachable in a row (the backoff)
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    problems: Mapped[list[Any]] = mapped_column(default=list)  # overlap/gap checks of the uploaded tag
    uploaded_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class CondbUpload(Base):
    """One payload IoV on its way into the staging tag, written before each request so an upload resumes.

    ``state``: pending -> sending_payload -> payload -> sending_iov -> done, or refused (``error`` says why).
    A ``sending_*`` row after a crash means the answer was lost: the next upload asks the server first.
    """

    __tablename__ = "condb_upload"
    __table_args__ = (
        UniqueConstraint(
            "tag_id", "name", "checksum", "exp_low", "run_low", "exp_high", "run_high", name="uq_condb_upload_iov"
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("condb_tag.id"))
    calibration: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    revision: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(32))
    exp_low: Mapped[int] = mapped_column(Integer)
    run_low: Mapped[int] = mapped_column(Integer)
    exp_high: Mapped[int] = mapped_column(Integer)
    run_high: Mapped[int] = mapped_column(Integer)
    file: Mapped[str] = mapped_column(String(1024))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    payload_id: Mapped[int | None] = mapped_column(Integer, default=None)  # payloadId on the server
    condb_revision: Mapped[int | None] = mapped_column(Integer, default=None)  # the server's revision
    iov_id: Mapped[int | None] = mapped_column(Integer, default=None)  # payloadIovId on the server
    error: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class TicketMessage(Base):
    """A message for a calibration's ticket: sent to Jira when configured (outbox), else kept here."""

    __tablename__ = "ticket_message"
    __table_args__ = (UniqueConstraint("dedup_key", name="uq_ticket_message_dedup_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    processing_id: Mapped[int] = mapped_column(ForeignKey("processing.id"))
    calibration: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # created|window_open|submitted|failed|finished|signoff|...
    dedup_key: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    ticket_key: Mapped[str] = mapped_column(String(64), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")


class AuditEntry(Base):
    """Every change a person makes: who, what, when."""

    __tablename__ = "audit_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    processing: Mapped[str] = mapped_column(String(64), default="")
    calibration: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WebSession(Base):
    """A login of the served UI: revoked at logout, its role re-read from LDAP every few minutes."""

    __tablename__ = "web_session"
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    checked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
