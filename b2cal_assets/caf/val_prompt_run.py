"""``b2cal-val-prompt-run``: run one validation script over a finished job, from the framework's
``b2val-prompt-run`` config JSON.

    b2cal-val-prompt-run Local validation_config.json [--calibrations-dir DIR] [--overwrite-working-dir]

The config holds ``validation_script``, ``job_path``, ``input_data_path``, ``download_files``,
``backend_args``, ``requested_iov`` and ``expert_config`` (overrides of the script's defaults). The
script runs as the framework runs it (a program, four string arguments) in ``validation_results/``;
its plots and the copied ``download_files/`` are there, and the plots it wrote into ``job_path`` are
copied to ``validation_results/job_path/`` (a batch job's results travel as that one directory). The
validation runs on this machine whatever the backend named (the framework's accepts one for its
command line). Exit status: the script's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from b2cal_assets.caf.scripts import (
    CALIBRATIONS_DIR_ENV,
    ValidationScript,
    default_calibrations_dir,
    load_scripts,
)
from b2cal_assets.caf.shim import validations_dir_of
from b2cal_assets.caf.validation_job import run_validation_job
from b2cal_assets.domain.prompt_inputs import InputFileError, read_validation_config
from b2cal_assets.domain.settings import ContractError

__all__ = ["WORKING_DIR", "main"]

WORKING_DIR = "validation_results"


class UsageError(Exception):
    """An input the expert must fix; printed as one line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="b2cal-val-prompt-run",
        description="Run one prompt validation script over a finished calibration job, as b2val-prompt-run does.",
    )
    subparsers = parser.add_subparsers(dest="backend", required=True, metavar="{Local,LSF,PBS,HTCondor,Slurm}")
    for name in ("Local", "LSF", "PBS", "HTCondor", "Slurm"):
        sub = subparsers.add_parser(name, help=f"as b2val-prompt-run {name} (the validation runs here)")
        sub.add_argument("validation_config", help="validation_script, job_path, input_data_path, requested_iov, ...")
        sub.add_argument("input_data", nargs="?", help="accepted for the framework's command line; not read")
        sub.add_argument("--overwrite-working-dir", dest="overwrite_workdir", action="store_true",
                         help=f"replace an existing {WORKING_DIR}/")
        sub.add_argument("--calibrations-dir", dest="calibrations_dir", metavar="",
                         help=f"the calibrations directory the validations belong to (default: ${CALIBRATIONS_DIR_ENV})")
        sub.add_argument("--timeout", dest="timeout_s", type=float, metavar="", help="stop the script after this many s")
    return parser


def _find_validation(name: str, calibrations_dir: str | None) -> ValidationScript:
    given = Path(name)
    folder = Path(calibrations_dir) if calibrations_dir else default_calibrations_dir()
    if given.is_file() and given.resolve().parent != validations_dir_of(folder.resolve()):
        # a path to a script in the framework's layout: prompt/validations/<x>.py beside prompt/calibrations/
        folder = given.resolve().parent.parent / "calibrations"
    scripts = load_scripts(folder)
    for script in scripts.calibrations.values():
        if script.validation is not None and script.validation.file.stem == given.stem:
            return script.validation
    for error in scripts.errors:
        if Path(error.file).stem == given.stem:
            raise UsageError(f"validation_script {name}: {error}")
    raise UsageError(f"validation_script {name!r}: no validation script {given.stem}.py of a loaded calibration in {folder}")


def _keep_job_path_plots(plots: list[Path], job_path: Path, workdir: Path) -> None:
    """The plots the script wrote into ``job_path``, copied into the working directory."""
    job_path = job_path.resolve()
    for plot in plots:
        if not plot.is_relative_to(workdir) and plot.is_relative_to(job_path):
            target = workdir / "job_path" / plot.relative_to(job_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(plot, target)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = read_validation_config(args.validation_config)
        validation = _find_validation(config.validation_script, args.calibrations_dir)
        if not Path(config.job_path).is_dir():
            raise UsageError(f"{args.validation_config}: job_path: {config.job_path} is not a directory")
        workdir = Path(WORKING_DIR).resolve()
        if workdir.exists() and not args.overwrite_workdir:
            raise UsageError(f"{workdir} exists; move it or use --overwrite-working-dir")
        run = run_validation_job(
            validation,
            job_path=config.job_path,
            input_data_path=config.input_data_path,
            requested_iov=config.requested_iov,
            expert_config=config.expert_config,
            workdir=workdir,
            timeout_s=args.timeout_s,
            download_files=config.download_files,
        )
    except (UsageError, InputFileError, ContractError) as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 1
    _keep_job_path_plots(run.plots, Path(config.job_path), workdir)
    print(run.log.read_text(errors="replace"), end="")
    print(f"[INFO] {validation.name}: {run.summary}; {len(run.plots)} plot(s) and {len(run.downloaded)} file(s) in {workdir}")
    return run.exit_code if run.exit_code > 0 else (0 if run.passed else 1)


if __name__ == "__main__":
    sys.exit(main())
