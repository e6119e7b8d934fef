"""Running an expert's validation script over an attempt's payloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2cal_assets.domain.scripts import CalibrationScript
from b2cal_assets.loop.service import LoopService


@dataclass
class ValidationOutcome:
    passed: bool
    summary: str
    plots: list[Path] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def run_validation_script(
    service: LoopService,
    processing: str,
    calibration: str,
    script: CalibrationScript,
    expert_config: dict[str, Any] | None = None,
) -> ValidationOutcome:
    """The expert's verdict on the current payloads; a failing script is a failed check, not a crash."""
    payloads = service.current_payloads(processing, calibration)
    if not payloads:
        return ValidationOutcome(False, "no payloads to validate")
    job_path = Path(payloads[0].file).parent.parent  # the attempt's directory holding outputdb/
    if script.validation is None:
        return ValidationOutcome(True, f"{calibration} has no validation script; nothing to check")
    input_data_path = str(job_path / "input_data.json")
    try:
        result = script.validation.run_validation(
            job_path, input_data_path, service.processing_iov(processing), expert_config or {}
        )
    except Exception as exc:  # the expert's script failing is the check's verdict
        return ValidationOutcome(False, f"the validation script failed: {type(exc).__name__}: {exc}")
    result = result or {}
    plots = [Path(p) for p in result.get("plots", []) if Path(p).exists()]
    if not plots:
        plots = sorted((job_path / "validation").glob("*.png"))
    return ValidationOutcome(
        passed=bool(result.get("passed", True)),
        summary=str(result.get("summary", "")),
        plots=plots,
        metrics=dict(result.get("metrics", {})),
    )
