"""``b2cal status``: one view of every processing, calibration, latest attempt and its jobs, what the loop
did by itself (relaunches, resumes), and the Dagster runs that are stuck."""

from __future__ import annotations

from b2cal_assets import home
from b2cal_assets.cli.common import add_db_argument, add_dir_argument, loop_service, print_json, user_errors
from b2cal_assets.cli.payloads import condb_json
from b2cal_assets.cli.tables import print_table
from b2cal_assets.domain.states import ACTIVE_STATES, CalibrationState


def register(sub) -> None:
    p = sub.add_parser("status", help="every processing, calibration and job at a glance")
    p.add_argument("--processing", default=None, help="only this processing")
    p.add_argument(
        "--jobs", action="store_true", help="also list the collector subjobs of each latest attempt"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--no-runs",
        action="store_true",
        help="skip the check of Dagster's runs and daemon ($DAGSTER_HOME) for stuck runs",
    )
    add_db_argument(p)
    add_dir_argument(p)
    p.set_defaults(func=run)


def _note(r) -> str:
    if r.excluded:
        return "excluded: dependents use the global-tag payloads"
    if r.blocked_by:
        return f"blocked by rejected {r.blocked_by}"
    if r.recovery and r.state in ACTIVE_STATES | {CalibrationState.FAILED}:
        return r.recovery.splitlines()[0][:110]
    if r.error:
        return r.error.splitlines()[0][:70]
    if r.deadline is not None and r.state == CalibrationState.WINDOW_OPEN:
        return f"submit before {r.deadline:%Y-%m-%d %H:%M} UTC"
    return ""


def run(args) -> int:
    service = loop_service(args)
    with user_errors():
        names = [args.processing] if args.processing else service.all_processing_names()
        everything = {name: service.status_rows(name) for name in names}
        jobs = {name: service.job_rows(name) for name in names} if args.jobs or args.json else {}
        flagged = {name: service.flagged_files(name) for name in names}
        sources = service.source_health()
        uploads = service.condb_uploads(names)
    if args.json:
        print_json(
            {
                name: {
                    "calibrations": [r.__dict__ for r in rows],
                    "jobs": [j.__dict__ for j in jobs.get(name, [])],
                    "flagged_files": [f.__dict__ for f in flagged[name]],
                    "data_sources": [h.__dict__ for h in sources if h.site == service.site_of(name).name],
                    "condb": condb_json(uploads.get(name)),
                }
                for name, rows in everything.items()
            }
        )
        return 0
    if not everything:
        print("no processings yet: create one with 'b2cal processing create'")
        _print_data_sources(sources, flagged)
        if not args.no_runs:
            _print_dagster_health()
        return 0
    table = [
        [
            r.processing,
            r.step,
            r.state,
            r.expert,
            (f"#{r.attempts} {r.attempt_state} by {r.submitted_by}" if r.attempts else ""),
            r.jobs,
            str(r.payloads or ""),
            _note(r),
        ]
        for rows in everything.values()
        for r in rows
    ]
    print_table(
        ["processing", "step", "state", "expert", "latest attempt", "jobs", "payloads", "note"], table
    )
    _print_data_sources(sources, flagged)
    _print_condb(uploads)
    if args.jobs:
        print()
        job_table = [
            [
                j.processing,
                j.calibration,
                str(j.attempt),
                j.name,
                j.backend,
                j.state,
                "" if j.exit_code is None else str(j.exit_code),
                str(j.tries),
                "" if j.duration_s is None else f"{j.duration_s:.0f} s",
                j.workdir,
            ]
            for rows in jobs.values()
            for j in rows
        ]
        print_table(
            ["processing", "calibration", "attempt", "job", "backend", "state", "exit", "tries", "ran", "logs"],
            job_table,
        )
    if not args.no_runs:
        _print_dagster_health()
    return 0


def _print_data_sources(sources, flagged) -> None:
    """Each site's data source (Rucio) and whether it answers; the files it flagged, which no job reads."""
    lines = [("DATA SOURCE: " if not h.reachable else "data source: ") + h.describe() for h in sources]
    for name, files in flagged.items():
        if files:
            lines.append(f"{name}: {len(files)} file(s) flagged by their source, not given to jobs:")
            lines += [f"  {f.did or f.path} ({f.flag}): {f.detail}" for f in files[:10]]
            if len(files) > 10:
                lines.append(f"  ... and {len(files) - 10} more (b2cal status --json lists them all)")
    if lines:
        print()
        print("\n".join(lines))


def _print_condb(uploads) -> None:
    """Each processing's staging tag in the conditions database: uploaded, waiting for the server, refused."""
    if not uploads:
        return
    print()
    print("conditions database:")
    for name, upload in uploads.items():
        pending = " (upload due)" if upload.due and upload.outcome != "unavailable" else ""
        print(f"  {name}: {upload.describe()}{pending}")


def _print_dagster_health() -> None:
    """Stuck runs and a silent daemon, from the Dagster instance in $DAGSTER_HOME (if there is one)."""
    # deferred: Dagster takes most of a second to import, and `status --json` and the other commands never need it
    from b2cal_assets.defs.run_health import daemon_problem, open_instance, stuck_runs

    try:
        instance = open_instance(home.dagster_home())
        if instance is None:
            return
        try:
            problem = daemon_problem(instance)
            stuck = stuck_runs(instance)
        finally:
            instance.dispose()
    except Exception as exc:  # the calibration status above stands on its own
        print(f"(Dagster's runs not checked: {type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        return
    if problem or stuck:
        print()
    if problem:
        print(f"DAEMON: {problem}")
    if stuck:
        print(f"{len(stuck)} Dagster run(s) stuck:")
        print_table(
            ["run", "status", "processing", "run key / assets", "problem", "what happens next"],
            [[r.run_id[:8], r.status, r.partition, r.what, r.problem, r.next_step] for r in stuck],
        )
