"""Asset checks on a calibration's payloads: validity (blocking) and the expert's validation plots."""

import base64
from pathlib import Path
from typing import Any

import dagster as dg

from b2cal_assets.defs.keys import payloads_key
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.loop.payload_checks import validity_problems
from b2cal_assets.loop.validation import run_validation_script


def _processing(context) -> str:
    return context.run.tags.get("dagster/partition", "")


def validity_check(name: str, script) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=payloads_key(name),
        name="payload_validity",
        blocking=True,
        description="Every payload file is readable, its values finite, its IoV inside the processing; "
        "every run of the processing has a current revision of each payload.",
    )
    def _validity(context, loop: CalibrationLoopResource) -> dg.AssetCheckResult:
        service = loop.service()
        processing = _processing(context)
        problems, summary = validity_problems(
            service, processing, name, produced_payloads=script.settings.produced_payloads
        )
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "processing": processing,
                "payloads": len(summary),
                "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
            },
        )

    return _validity


def validation_check(name: str, script) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=payloads_key(name),
        name="validation",
        blocking=True,
        description="The calibration's validation script over its payloads; plots shown here.",
    )
    def _validation(context, loop: CalibrationLoopResource) -> dg.AssetCheckResult:
        service = loop.service()
        processing = _processing(context)
        result = run_validation_script(service, processing, name, script)
        metadata: dict[str, Any] = {
            "processing": processing,
            "summary": result.summary,
            "plots": dg.MetadataValue.md(_plots_markdown(result.plots) or "no plots"),
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


def _plots_markdown(plots: list[Path]) -> str:
    """Plots inline as data URLs, so the UI shows them without a file server."""
    parts = []
    for plot in plots:
        data = base64.b64encode(Path(plot).read_bytes()).decode()
        parts.append(f"**{Path(plot).name}**\n\n![{Path(plot).stem}](data:image/png;base64,{data})")
    return "\n\n".join(parts)


def build_checks(calibrations: dict) -> list[dg.AssetChecksDefinition]:
    checks = []
    for name, script in calibrations.items():
        checks.append(validity_check(name, script))
        checks.append(validation_check(name, script))
    return checks
