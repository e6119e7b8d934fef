"""``b2cal-prompt-run``: run one prompt calibration script from the framework's input files.

The same command line as the framework's ``b2caf-prompt-run``, so an expert tries a script locally
exactly as with the framework::

    b2cal-prompt-run Local caf_config.json input_data.json [--max-processes 4] [--heartbeat 60]
        [--max-files-per-subjob N | --max-subjobs N] [--dry-run] [--overwrite-working-dir]
        [--overwrite-output-db] [--calibrations-dir DIR]

Backends: ``Local``, ``LSF``, ``HTCondor`` (and ``Slurm``, which b2cal adds); ``PBS`` is refused
(b2cal has no PBS backend). The calibrations run with b2cal's runner in ``calibration_results/``
(rerunning resumes from its checkpoint, as the framework's CAF does); each calibration's payloads
end up in ``caf_outputdb_results/<calibration name>/`` (``database.txt`` + payload files).
``database_chain`` entries are local databases (a directory holding ``database.txt``, or that file)
or global tags kept locally under ``$B2CAL_HOME/globaltags/<tag>``; ``testing_payloads`` come last
and win. Exit status: 0 done, 1 the calibration failed or an input is wrong (one line says what).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from b2cal_assets.backends.base import BatchBackend
from b2cal_assets.backends.htcondor import HTCondorBackend
from b2cal_assets.backends.local import LocalBackend
from b2cal_assets.backends.lsf import LSFBackend
from b2cal_assets.backends.manager import RetryPolicy, SubmitPolicy
from b2cal_assets.backends.slurm import SlurmBackend
from b2cal_assets.caf.localdb import StoredPayload
from b2cal_assets.caf.runner import CalibrationFailed, CalibrationJob, run_calibration_job
from b2cal_assets.caf.scripts import (
    CALIBRATIONS_DIR_ENV,
    CalibrationScript,
    default_calibrations_dir,
    load_scripts,
)
from b2cal_assets.domain.expert_config import merge_expert_config
from b2cal_assets.domain.framework_required import FrameworkRequired
from b2cal_assets.domain.outputdb import DATABASE_TXT, PayloadEntry, format_database_txt
from b2cal_assets.domain.prompt_inputs import CafConfig, InputFileError, read_caf_config, read_input_data
from b2cal_assets.domain.settings import ContractError
from b2cal_assets.home import globaltag_dir
from b2cal_assets.settings import settings

__all__ = ["OUTPUTDB_RESULTS", "WORKING_DIR", "main"]

WORKING_DIR = "calibration_results"
OUTPUTDB_RESULTS = "caf_outputdb_results"
DEFAULT_HEARTBEAT_S = 60


class UsageError(Exception):
    """An input the expert must fix; printed as one line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="b2cal-prompt-run",
        description="Run one prompt calibration script from caf_config.json and input_data.json, as the "
        "framework's b2caf-prompt-run does.",
    )
    subparsers = parser.add_subparsers(dest="backend", required=True, metavar="{Local,LSF,PBS,HTCondor,Slurm}")
    backends = {
        "Local": "local multiprocessing",
        "LSF": "the LSF batch system",
        "PBS": "PBS (not available in b2cal)",
        "HTCondor": "the HTCondor batch system",
        "Slurm": "the Slurm batch system (a b2cal addition)",
    }
    for name, text in backends.items():
        sub = subparsers.add_parser(name, help=f"Use {text}.", description=f"Runs the jobs using {text}.")
        sub.add_argument("caf_config", help="caf_config.json: caf_script, database_chain, requested_iov, ...")
        sub.add_argument("input_data", help='input_data.json: {"<data name>": [["<run directory>", [exp, run]], ...]}')
        if name == "Local":
            sub.add_argument("--max-processes", dest="max_processes", type=int, default=4, metavar="",
                             help="the process pool size (default: 4)")
        if name in ("LSF", "PBS"):
            sub.add_argument("--queue", dest="queue", metavar="", help="the batch queue")
        if name == "HTCondor":
            sub.add_argument("--universe", dest="universe", metavar="", help="e.g. vanilla")
            sub.add_argument("--getenv", dest="getenv", metavar="", help="not used by b2cal's HTCondor backend")
            sub.add_argument("--path-prefix", dest="path_prefix", metavar="",
                             help="not used here: a b2cal site's path_prefix does this")
        if name == "Slurm":
            sub.add_argument("--partition", dest="partition", metavar="", help="the Slurm partition")
        if name != "Local":
            sub.add_argument("--global-job-limit", dest="global_job_limit", type=int, default=1000, metavar="")
            sub.add_argument("--submission-check-heartbeat", dest="submission_check_heartbeat", type=int,
                             default=30, metavar="")
        sub.add_argument("--log-level", dest="log_level", default="INFO", metavar="",
                         choices=["DEBUG", "INFO", "RESULT", "WARNING", "ERROR", "FATAL"])
        sub.add_argument("--debug-level", dest="debug_level", type=int, metavar="")
        sub.add_argument("--heartbeat", dest="heartbeat", type=int, default=DEFAULT_HEARTBEAT_S, metavar="",
                         help=f"seconds between checks of the jobs (default: {DEFAULT_HEARTBEAT_S})")
        group = sub.add_mutually_exclusive_group()
        group.add_argument("--max-files-per-subjob", dest="files_per_subjob", type=int, metavar="")
        group.add_argument("--max-subjobs", dest="max_subjobs", type=int, metavar="")
        sub.add_argument("--dry-run", dest="dry_run", action="store_true",
                         help="set up the calibrations (get_calibrations) without running them")
        sub.add_argument("--overwrite-output-db", dest="overwrite_db", action="store_true",
                         help=f"replace an existing {OUTPUTDB_RESULTS}/")
        sub.add_argument("--overwrite-working-dir", dest="overwrite_workdir", action="store_true",
                         help=f"delete {WORKING_DIR}/ first instead of resuming from it")
        sub.add_argument("--calibrations-dir", dest="calibrations_dir", metavar="",
                         help=f"where caf_script is found when it is not a path (default: ${CALIBRATIONS_DIR_ENV})")
    return parser


def _backend(args: argparse.Namespace, backend_args: dict[str, Any]) -> BatchBackend:
    """The batch backend, configured lowest first: caf_config's backend_args, then the command line."""
    if args.backend == "Local":
        return LocalBackend(max_processes=args.max_processes)
    if args.backend == "PBS":
        raise UsageError("the PBS backend is not available in b2cal; use Local, LSF, HTCondor or Slurm")
    options = {"LSF": ("queue",), "HTCondor": ("universe",), "Slurm": ("partition",)}[args.backend]
    config = {**backend_args, **{k: getattr(args, k) for k in options if getattr(args, k) is not None}}
    for unused in ("getenv", "path_prefix"):
        config.pop(unused, None)
    try:
        if args.backend == "LSF":
            return LSFBackend.from_config(config)
        if args.backend == "HTCondor":
            return HTCondorBackend.from_config(config)

        return SlurmBackend.from_config(config)
    except Exception as exc:  # a backend refusing its settings names them
        raise UsageError(f"backend_args for {args.backend}: {exc}") from None


def _find_script(caf_script: str, calibrations_dir: str | None) -> CalibrationScript:
    given = Path(caf_script)
    folder = given.parent if given.is_file() else Path(calibrations_dir) if calibrations_dir else default_calibrations_dir()
    scripts = load_scripts(folder)
    for script in scripts.calibrations.values():
        if script.file.stem == given.stem:
            return script
    for error in scripts.errors:
        if Path(error.file).stem == given.stem:
            raise UsageError(f"caf_script {caf_script}: {error}")
    raise UsageError(f"caf_script {caf_script!r}: no calibration script {given.stem}.py in {folder}")


def _database_chain(config: CafConfig) -> list[Path]:
    chain = []
    for entry in [*config.database_chain, *config.testing_payloads]:
        path = Path(entry)
        folder = path.parent if path.name == DATABASE_TXT else path
        if not (folder / DATABASE_TXT).is_file():
            folder = globaltag_dir(entry)
        if not (folder / DATABASE_TXT).is_file():
            raise UsageError(
                f"database_chain entry {entry!r} is neither a local database (a directory with {DATABASE_TXT}) nor a "
                f"global tag kept at {folder}"
            )
        chain.append(folder)
    return chain


def _collect_outputdbs(results: Path, by_calibration: dict[str, list[StoredPayload]]) -> None:
    """``caf_outputdb_results/<calibration>/``: each calibration's database.txt and payload files."""
    results.mkdir(parents=True)
    for name, payloads in by_calibration.items():
        target = results / name
        target.mkdir()
        for payload in payloads:
            shutil.copy2(payload.file, target / payload.file.name)
        entries = [PayloadEntry(p.name, p.revision, p.iov) for p in payloads]
        (target / DATABASE_TXT).write_text(format_database_txt(entries))


def _progress(event: dict[str, Any]) -> None:
    message = event.get("message")
    if message:
        print(f"[INFO] {message}", flush=True)


def _run(args: argparse.Namespace) -> int:
    config = read_caf_config(args.caf_config)
    input_data = read_input_data(args.input_data)
    script = _find_script(config.caf_script, args.calibrations_dir)
    required = script.settings.input_data_names
    if missing := sorted(required - set(input_data)):
        raise UsageError(
            f"{args.input_data}: the input data does not contain all of the required input names; missing "
            f"{', '.join(missing)} (required: {', '.join(sorted(required))})"
        )
    for extra in sorted(set(input_data) - required):
        print(f"[WARNING] {args.input_data}: {extra!r} is not among the script's input_data_names; left out")
    input_data = {name: files for name, files in input_data.items() if name in required}
    for name, files in input_data.items():
        if not files:
            print(f"[WARNING] '{name}' has no files associated with it!")
    try:
        overrides = merge_expert_config(script.settings.expert_config, config.expert_config)
    except ContractError as exc:
        raise UsageError(f"{args.caf_config}: expert_config: {exc.message}") from None
    chain = _database_chain(config)
    backend = _backend(args, dict(config.backend_args))
    if args.dry_run:
        calibrations = script.get_calibrations(input_data, requested_iov=config.requested_iov, expert_config=overrides)
        for cal in calibrations:
            cal.check_runnable()
            print(f"[INFO] {script.name}: would run {cal.name} over {len(cal.input_files)} file(s)")
        return 0
    workdir = Path(WORKING_DIR).resolve()
    if args.overwrite_workdir and workdir.is_dir():
        print(f"[WARNING] Overwrite working dir set, removing '{workdir}'...")
        shutil.rmtree(workdir)
    results = Path(OUTPUTDB_RESULTS).resolve()
    if results.exists() and not args.overwrite_db:
        raise UsageError(f"{results} exists; will not overwrite the output db (move it, or use --overwrite-output-db)")
    job = CalibrationJob(
        script_file=script.file,
        calibrations_dir=script.calibrations_dir,
        calibration_script_name=script.name,
        input_data=input_data,
        requested_iov=config.requested_iov,
        workdir=workdir,
        expert_config=overrides,
        database_chain=chain,
        max_files_per_collector_job=args.files_per_subjob,
        max_collector_jobs=args.max_subjobs,
        backend_args=dict(config.backend_args),
    )
    configured_poll_s = settings().batch_poll_interval_s
    policy = SubmitPolicy(
        max_jobs_in_system=getattr(args, "global_job_limit", 1000),
        poll_interval_s=float(args.heartbeat) if configured_poll_s is None else configured_poll_s,
    )
    # no automatic resubmission, as with the framework's CAF: a failed subjob fails the calibration
    outcome = run_calibration_job(
        job, backend, submit_policy=policy, retry_policy=RetryPolicy(max_retries=0), progress=_progress
    )
    if not outcome.payloads:
        raise CalibrationFailed(f"{script.name}: the calibrations finished without any payload")
    if results.exists():
        print(f"[WARNING] Overwrite output db set, removing '{results}'...")
        shutil.rmtree(results)
    _collect_outputdbs(results, outcome.payloads_by_calibration)
    print(f"[INFO] {script.name}: payloads of {', '.join(outcome.payloads_by_calibration)} in {results}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (UsageError, InputFileError, ContractError, FrameworkRequired) as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 1
    except CalibrationFailed as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
