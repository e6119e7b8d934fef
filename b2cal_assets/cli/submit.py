"""``b2cal submit``: an expert submits a calibration with their settings while its window is open."""

from __future__ import annotations

from b2cal_assets.cli import UserError
from b2cal_assets.cli.common import (
    add_db_argument,
    add_dir_argument,
    loop_service,
    number_type,
    parse_json,
    user_errors,
)
from b2cal_assets.cli.identity import acting, add_as_argument, require_calibration_authority


def register(sub) -> None:
    p = sub.add_parser(
        "submit",
        help="submit a calibration with your expert_config while its window is open",
        description="The settings are checked against the script's expert_config keys and types; the loop "
        "sensor starts the job at its next tick (or at the deadline, where the site holds jobs until then).",
    )
    p.add_argument("processing")
    p.add_argument("calibration")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="an expert_config override (repeatable)",
    )
    p.add_argument(
        "--config", default=None, metavar="JSON", help="all expert_config overrides as one JSON object"
    )
    p.add_argument("--max-collector-jobs", type=number_type(minimum=1, integer=True), default=None)
    p.add_argument("--max-files-per-collector-job", type=number_type(minimum=1, integer=True), default=None)
    p.add_argument("--max-iterations", type=number_type(minimum=1, integer=True), default=None)
    p.add_argument(
        "--filters",
        default=None,
        metavar="JSON",
        help='input_data_filters overrides, e.g. {"hadron_calib": ["Good"]}',
    )
    add_as_argument(p)
    add_db_argument(p)
    add_dir_argument(p)
    p.set_defaults(func=run)


def _json(text: str, what: str):
    return parse_json(text, what)


def run(args) -> int:
    overrides = _json(args.config, "--config") if args.config else {}
    if not isinstance(overrides, dict):
        raise UserError("--config must be a JSON object such as '{\"min_hits\": 50}'")
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set takes KEY=JSON, e.g. --set min_hits=50; got {item!r}")
        overrides[key] = _json(value, f"--set {key}") if value else ""
    job_config = {
        "max_collector_jobs": args.max_collector_jobs,
        "max_files_per_collector_job": args.max_files_per_collector_job,
        "max_iterations": args.max_iterations,
        "input_data_filters": _json(args.filters, "--filters") if args.filters else None,
    }
    service = loop_service(args)
    actor = acting(args)
    require_calibration_authority(service, actor, args.processing, args.calibration, "submit")
    with user_errors():
        message = service.submit(
            args.processing,
            args.calibration,
            by=actor.name,
            expert_config=overrides,
            job_config={k: v for k, v in job_config.items() if v is not None},
        )
    print(message)
    return 0
