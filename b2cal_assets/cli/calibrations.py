"""``b2cal calibrations``: what calibration scripts a directory holds, and which of them are broken."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from b2cal_assets.caf.scripts import CALIBRATIONS_DIR_ENV, ScriptSet, load_scripts
from b2cal_assets.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calibrations", help="inspect the calibration scripts")
    sub = parser.add_subparsers(dest="calibrations_command", metavar="SUBCOMMAND")
    sub.required = True
    listing = sub.add_parser(
        "list",
        help="list the calibration scripts, their stages and dependencies, and the scripts that failed to load",
        description="Exit status 1 if any script failed to load (the listing is still printed).",
    )
    listing.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"calibrations directory (default: ${CALIBRATIONS_DIR_ENV}, else the built-in demo scripts)",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=list_command)


def _load(directory: Path | None) -> ScriptSet:
    try:
        return load_scripts(directory)
    except OSError as exc:
        raise UserError(str(exc)) from None


def format_table(scripts: ScriptSet) -> str:
    rows = [("NAME", "STAGE", "DEPENDS ON", "EXPERT")]
    for script in scripts.calibrations.values():
        rows.append(
            (
                script.name,
                script.stage.value,
                ", ".join(script.depends_on) or "-",
                script.settings.expert_username,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]
    if not scripts.calibrations:
        lines.append(f"(no calibration scripts in {scripts.calibrations_dir})")
    if scripts.errors:
        lines.append("")
        lines.append(f"{len(scripts.errors)} script error(s):")
        lines.extend(f"  {error}" for error in scripts.errors)
    return "\n".join(lines)


def list_command(args: argparse.Namespace) -> int:
    scripts = _load(args.dir)
    if args.json:
        print(json.dumps(scripts.to_json(), indent=2))
    else:
        print(format_table(scripts))
    return 1 if scripts.errors else 0
