"""Reading what the loop recorded: ticket messages and audit entries, as a person would see them."""

from b2cal_assets.db.repo import audit, tickets


def messages(service, processing: str, calibration: str | None = None) -> list:
    with service.session() as s:
        return [m for m, _p in tickets.list_messages(s, processing=processing, calibration=calibration)]


def kinds(service, processing: str, calibration: str) -> list[str]:
    return [m.kind for m in messages(service, processing, calibration)]


def audit_actions(service, processing: str, calibration: str | None = None) -> list[tuple[str, str, dict]]:
    """(user, action, details), oldest first."""
    with service.session() as s:
        rows = audit.list_audit(s, processing=processing, calibration=calibration, limit=10_000)
        return [(a.user, a.action, dict(a.details)) for a in reversed(rows)]


def fake_run(
    service,
    processing: str,
    calibration: str,
    constants: dict,
    *,
    by: str = "auto",
    iov=None,
    expert_config=None,
):
    """An attempt that ends with ``constants`` as its payloads, the way a finished job records them."""
    import tempfile
    from pathlib import Path

    from b2cal_assets.caf.localdb import write_outputdb

    ticket = service.begin_attempt(
        processing, calibration, submitted_by=by, expert_config=dict(expert_config or {}), job_config={}
    )
    iov = iov or service.processing_iov(processing)
    ticket.workdir.mkdir(parents=True, exist_ok=True)
    outputdb = Path(tempfile.mkdtemp(dir=ticket.workdir)) / "outputdb"
    written = write_outputdb(outputdb, [], [(name, iov, values) for name, values in constants.items()])
    service.finish_attempt(ticket, outputdb, written, iterations=1)
    return ticket


def snapshot_db(service) -> dict[str, list[tuple]]:
    """Every row of the tables a user action may change."""
    from sqlalchemy import select

    from b2cal_assets.db import models

    tables = (
        models.Attempt,
        models.Payload,
        models.AuditEntry,
        models.TicketMessage,
        models.ProcessingCalibration,
        models.Processing,
        models.Job,
    )
    with service.session() as s:
        return {
            t.__tablename__: [
                tuple(getattr(r, c.key) for c in t.__table__.columns) for r in s.scalars(select(t))
            ]
            for t in tables
        }


def snapshot_files(root) -> dict[str, str]:
    import hashlib
    from pathlib import Path

    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file() and not p.name.startswith("b2cal.db")
    }


def collector_jobs(rows) -> list:
    """An attempt's job rows without its validation job (``<calibration>.validation``, recorded beside
    the collector subjobs when the check ran)."""
    return [j for j in rows if not j.name.endswith(".validation")]


def toy_loop(home, processings: dict[str, range]):
    """The toy calibrations on toy_site over the current database: the toy global tag, toy files for
    every processing's runs, the processings, and one tick (the tests' usual starting point)."""
    from b2cal_assets.caf.scripts import load_scripts
    from b2cal_assets.db.engine import database_url, ensure_schema
    from b2cal_assets.loop import admin
    from b2cal_assets.loop.service import LoopService
    from b2cal_assets_tests.defs import toy
    from b2cal_assets_tests.defs.conftest import TOY_SCRIPTS
    from b2cal_assets_tests.loop.conftest import add_processing, add_site

    url = database_url()
    ensure_schema(url)
    add_site("toy_site")
    admin.write_global_tag("toy_base", {"ToyA": {"mean": [0.0]}})
    runs = sorted({run for r in processings.values() for run in r})
    admin.register_files(toy.generate(home / "data", range(runs[0], runs[-1] + 1), events=20), site_name="toy_site")
    for name, r in processings.items():
        add_processing(name, "toy_site", r)
    service = LoopService(url, load_scripts(TOY_SCRIPTS))
    service.tick()
    return service
