"""Asset checks on a calibration's payloads: validity (blocking) and the expert's validation plots.

Both are partitioned by processing like the payloads asset, so each processing's verdict, metrics and
history are its own. The plots stay in the payload store (the attempt's ``validation_run/``); the
check links to them and to the calibration page instead of copying them into Dagster's event log.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg

from b2cal_assets.caf.scripts import CalibrationScript
from b2cal_assets.defs.keys import VALIDATION_CHECK, VALIDITY_CHECK, payloads_key
from b2cal_assets.defs.partitions import partitioned_checks, processing_partitions
from b2cal_assets.defs.resources import CalibrationLoopResource
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


def validity_check(name: str, script: CalibrationScript) -> dg.AssetChecksDefinition:
    with partitioned_checks():

        @dg.asset_check(
            asset=payloads_key(name),
            name=VALIDITY_CHECK,
            blocking=True,
            partitions_def=processing_partitions,
            description="Every payload file is readable, its values finite, its IoV inside the processing; "
            "every run of the processing has a current revision of each payload.",
        )
        def _validity(
            context: dg.AssetCheckExecutionContext, loop: CalibrationLoopResource
        ) -> dg.AssetCheckResult:
            service = loop.service()
            processing = context.partition_key
            problems, summary = validity_problems(
                service, processing, name, produced_payloads=script.settings.produced_payloads
            )
            return dg.AssetCheckResult(
                passed=not problems,
                metadata={
                    "processing": processing,
                    "calibration_page": dg.MetadataValue.url(calibration_page_path(processing, name)),
                    "payloads": len(summary),
                    "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
                },
            )

    return _validity


def validation_check(name: str, script: CalibrationScript) -> dg.AssetChecksDefinition:
    with partitioned_checks():

        @dg.asset_check(
            asset=payloads_key(name),
            name=VALIDATION_CHECK,
            blocking=True,
            partitions_def=processing_partitions,
            description="The calibration's validation script over its payloads; its plots are on the "
            "calibration page.",
        )
        def _validation(
            context: dg.AssetCheckExecutionContext, loop: CalibrationLoopResource
        ) -> dg.AssetCheckResult:
            service = loop.service()
            processing = context.partition_key
            result = run_validation_script(service, processing, name, script)
            metadata: dict[str, Any] = {
                "processing": processing,
                "summary": result.summary,
                "calibration_page": dg.MetadataValue.url(calibration_page_path(processing, name)),
                "plots": len(result.plots),
                **plot_metadata(
                    result.plots,
                    processing,
                    name,
                    validation_dir(service.current_payloads(processing, name)),
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
            return dg.AssetCheckResult(passed=result.passed, metadata=metadata)

    return _validation


def build_checks(calibrations: Mapping[str, CalibrationScript]) -> list[dg.AssetChecksDefinition]:
    checks = []
    for name, script in calibrations.items():
        checks.append(validity_check(name, script))
        checks.append(validation_check(name, script))
    return checks
