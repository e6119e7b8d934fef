"""Asset checks on a calibration's payloads: validity (blocking) and the expert's validation plots.

Both are partitioned by processing like the payloads asset, so each processing's verdict, metrics and
history are its own. The validation script runs as ONE batch job at the processing's site, on the
site's backend (over SSH for a remote centre; ``b2val-prompt-run`` at a site with ``runner:
framework``), and its results come back to the payload store. The plots stay in the payload store (the attempt's ``validation_run/``); the
check links to them and to the calibration page instead of copying them into Dagster's event log.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg

from b2cal_assets.backends.base import BackendError
from b2cal_assets.caf.scripts import CalibrationScript
from b2cal_assets.caf.validation_batch import ValidationJobs
from b2cal_assets.defs.assets import BACKEND_RESOURCE_KEYS
from b2cal_assets.defs.keys import VALIDATION_CHECK, VALIDITY_CHECK, payloads_key
from b2cal_assets.defs.partitions import partitioned_checks, processing_partitions
from b2cal_assets.defs.running import close_backend, framework_backend, site_backend
from b2cal_assets.domain.site_runner import RunnerKind, framework_settings
from b2cal_assets.loop.page_views import validation_dir
from b2cal_assets.loop.payload_checks import validity_problems
from b2cal_assets.loop.validation import run_validation_script


def calibration_page_path(processing: str, calibration: str) -> str:
    """The calibration page served beside the UI (``web/calibration_html.calibration_path``; defs/ may
    not import web/, a test keeps the two equal). Relative: the UI and the pages share one host."""
    return f"/b2cal/processing/{quote(processing, safe='')}/{quote(calibration, safe='')}"


def plot_page_path(processing: str, calibration: str, name: str) -> str:
    """A plot as the calibration page serves it, behind the login (``web/calibration_html.plot_path``)."""
    return calibration_page_path(processing, calibration) + "/plots/" + quote(name, safe="/")


def plot_metadata(
    plots: list[Path], processing: str = "", calibration: str = "", folder: Path | None = None
) -> dict[str, dg.MetadataValue]:
    """Per plot its path in the payload store and, for those of the validation run's directory
    (``folder``), a link to it on the calibration page: where the plots are, not their bytes."""
    metadata: dict[str, dg.MetadataValue] = {}
    for plot in plots:
        metadata[f"plot/{Path(plot).name}"] = dg.MetadataValue.path(str(plot))
        if folder is not None and Path(plot).is_relative_to(folder):
            name = Path(plot).relative_to(folder).as_posix()
            metadata[f"plot_url/{Path(plot).name}"] = dg.MetadataValue.url(
                plot_page_path(processing, calibration, name)
            )
    return metadata


def _validity_result(service, processing: str, name: str, script: CalibrationScript) -> dg.AssetCheckResult:
    problems, summary = validity_problems(
        service, processing, name, produced_payloads=script.settings.produced_payloads
    )
    return dg.AssetCheckResult(
        asset_key=payloads_key(name),
        check_name=VALIDITY_CHECK,
        passed=not problems,
        metadata={
            "processing": processing,
            "calibration_page": dg.MetadataValue.url(calibration_page_path(processing, name)),
            "payloads": len(summary),
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
        },
    )


def validation_jobs(context, service, processing: str) -> ValidationJobs:
    """How the processing's site runs a validation job: its backend, and its framework setup if any."""
    site, resource, backend = site_backend(context, service, processing)
    common: dict[str, Any] = {
        "site": site.name,
        "backend_args": dict(site.backend_args),
        "submit_policy": resource.submit_policy(),
        "log": context.log.info,
    }
    if site.runner == RunnerKind.FRAMEWORK:
        framework = framework_settings(site.runner_args, site.backend)
        return ValidationJobs(
            framework_backend(site, framework, backend),  # the release's image, as for its calibrations
            runner=RunnerKind.FRAMEWORK,
            framework_setup=framework.setup,
            framework_backend=framework.backend,
            **common,
        )
    return ValidationJobs(backend, **common)


def _validation_result(
    service, processing: str, name: str, script: CalibrationScript, jobs: ValidationJobs | None
) -> dg.AssetCheckResult:
    try:
        result = run_validation_script(service, processing, name, script, jobs=jobs)
    except BackendError as exc:  # the site, not the script: no verdict, one line
        message = " ".join(str(exc).split())
        site = f"site {jobs.site if jobs is not None else '?'}"
        raise dg.Failure(description=message if message.startswith(site) else f"{site}: {message}") from None
    metadata: dict[str, Any] = {
        "processing": processing,
        "summary": result.summary,
        "calibration_page": dg.MetadataValue.url(calibration_page_path(processing, name)),
        "plots": len(result.plots),
        **plot_metadata(
            result.plots, processing, name, validation_dir(service.current_payloads(processing, name))
        ),
    }
    for key, value in result.metrics.items():
        if isinstance(value, int | float):
            metadata[f"metric/{key}"] = float(value)
    service.notify_finished(
        processing,
        name,
        passed=result.passed,
        checks=[("validation", result.passed, result.summary)],
        plots=result.plots,
        payloads=[f"{p.name} rev {p.revision}" for p in service.current_payloads(processing, name)],
    )
    return dg.AssetCheckResult(
        asset_key=payloads_key(name), check_name=VALIDATION_CHECK, passed=result.passed, metadata=metadata
    )


def _specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            VALIDITY_CHECK,
            asset=key,
            blocking=True,
            partitions_def=processing_partitions,
            description="Every payload file is readable, its values finite, its IoV inside the "
            "processing; every run of the processing has a current revision of each payload.",
        ),
        dg.AssetCheckSpec(
            VALIDATION_CHECK,
            asset=key,
            blocking=True,
            partitions_def=processing_partitions,
            description="The calibration's validation script over its payloads; its plots are on "
            "the calibration page.",
        ),
    ]


def build_checks(calibrations: Mapping[str, CalibrationScript]) -> list[dg.AssetChecksDefinition]:
    """Every calibration's two checks in one op that runs the selected ones (a run selects those of
    its calibration): one op instead of two per calibration, which at hundreds of calibrations was a
    large part of loading the code location."""
    if not calibrations:
        return []
    by_key = {payloads_key(name): (name, script) for name, script in calibrations.items()}
    with partitioned_checks():
        specs = [spec for key in by_key for spec in _specs(key)]

        @dg.multi_asset_check(
            name="payload_checks",
            specs=specs,
            can_subset=True,
            required_resource_keys={"loop", *BACKEND_RESOURCE_KEYS},  # validation runs at the site
        )
        def _checks(context: dg.AssetCheckExecutionContext):
            service = context.resources.loop.service()
            processing = context.partition_key
            jobs: list[ValidationJobs] = []  # the site's backend, built once the first validation runs
            try:
                for check in sorted(context.selected_asset_check_keys, key=lambda k: (k.asset_key.path, k.name)):
                    name, script = by_key[check.asset_key]
                    if check.name == VALIDITY_CHECK:
                        yield _validity_result(service, processing, name, script)
                    elif check.name == VALIDATION_CHECK:
                        if script.validation is not None and not jobs:
                            jobs.append(validation_jobs(context, service, processing))
                        yield _validation_result(service, processing, name, script, jobs[0] if jobs else None)
            finally:
                close_backend(context, *(job.backend for job in jobs))

    return [_checks]
