"""``b2cal calibrations``: what calibration scripts a directory holds, and which of them are broken."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import b2cal_assets
from b2cal_assets import home
from b2cal_assets.caf.manifest import MANIFEST_ENV, ManifestError, load_calibrations, load_manifest
from b2cal_assets.caf.scripts import CALIBRATIONS_DIR_ENV, ScriptSet
from b2cal_assets.cli import UserError

EXTRACTOR = "b2cal_assets.caf.manifest_extract"


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
    listing.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help=f"read the calibrations from this manifest (default: ${MANIFEST_ENV}, else load the scripts)",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=list_command)
    export = sub.add_parser(
        "export",
        help="write a manifest of the scripts' settings, loaded inside the framework's environment",
        description="Runs the setup command, then b2cal's extractor in that environment: it loads every "
        "script with the framework and writes a JSON manifest (settings, files, checksums, the framework "
        f"release). Point {MANIFEST_ENV} at it on a machine without the framework.",
    )
    export.add_argument("--dir", type=Path, required=True, help="the calibrations directory")
    export.add_argument(
        "--setup",
        required=True,
        metavar="CMD",
        help="the shell command that sets up the framework, e.g. 'source /cvmfs/belle.cern.ch/tools/b2setup "
        "release-08-01-00'",
    )
    export.add_argument(
        "--output", type=Path, default=None, help="the manifest file (default: $B2CAL_HOME/calibrations_manifest.json)"
    )
    export.add_argument(
        "--python",
        default="python3",
        help="the Python that runs the extractor after the setup (default: python3, the framework's); "
        "b2cal's dependencies must be importable by it",
    )
    export.set_defaults(func=export_command)


def _load(directory: Path | None, manifest: Path | None = None) -> ScriptSet:
    try:
        return load_calibrations(directory, manifest)
    except (OSError, ManifestError) as exc:
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
    if scripts.warnings:
        lines.append("")
        lines.append(f"{len(scripts.warnings)} warning(s):")
        lines.extend(f"  {warning}" for warning in scripts.warnings)
    return "\n".join(lines)


def list_command(args: argparse.Namespace) -> int:
    scripts = _load(args.dir, args.manifest)
    if args.json:
        print(json.dumps(scripts.to_json(), indent=2))
    else:
        print(format_table(scripts))
    return 1 if scripts.errors or scripts.warnings else 0


def export_command(args: argparse.Namespace) -> int:
    """Run the extractor inside the framework's environment; check what it wrote before saying so."""
    folder = args.dir.expanduser().resolve()
    if not folder.is_dir():
        raise UserError(f"--dir: {args.dir} is not a directory")
    if not args.setup.strip() or "\n" in args.setup:
        raise UserError("--setup: give one shell command line that sets up the framework")
    output = (args.output or home.b2cal_home() / "calibrations_manifest.json").expanduser().resolve()
    if output.is_dir():
        raise UserError(f"--output: {output} is a directory; name the manifest file")
    output.parent.mkdir(parents=True, exist_ok=True)
    source_root = str(Path(b2cal_assets.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)}
    script = f'{args.setup} && exec "$1" -m {EXTRACTOR} "$2" "$3"'
    try:
        result = subprocess.run(
            ["bash", "-c", script, "b2cal-export", args.python, str(folder), str(output) + ".new"],
            env=env,
            capture_output=True,
            text=True,
        )
    except OSError as exc:
        raise UserError(f"cannot run bash for --setup: {exc}") from None
    written = Path(str(output) + ".new")
    if result.returncode != 0:
        written.unlink(missing_ok=True)
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:]) or "no output"
        raise UserError(f"the setup or the extractor failed (exit {result.returncode}): {tail}")
    try:
        scripts = load_manifest(written, folder)
    except ManifestError as exc:
        written.unlink(missing_ok=True)
        raise UserError(f"the extractor wrote an unusable manifest: {exc}") from None
    written.replace(output)  # the old manifest stays until the new one is known good
    release = json.loads(output.read_text()).get("framework_release") or "no framework release"
    print(f"{output}: {len(scripts.calibrations)} calibration(s), {len(scripts.errors)} script error(s), {release}")
    print(f"load the calibrations from it: export {MANIFEST_ENV}={output}")
    return 0
