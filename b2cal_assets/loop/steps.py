"""The steps of a processing: every calibration plus the cDST production between alignment and post-tracking."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from b2cal_assets.caf.scripts import CalibrationScript
from b2cal_assets.domain.graph import CalibrationGraph
from b2cal_assets.domain.stages import Stage

CDST_STEP = "cdst"
PRE_CDST_STAGES = (Stage.LOCAL, Stage.PRE_TRACKING, Stage.ALIGNMENT)


@dataclass(frozen=True)
class StepInfo:
    """What the loop needs to know of a step, whatever defines it."""

    name: str
    stage: Stage
    depends_on: tuple[str, ...]
    raw_data_names: tuple[str, ...]
    needs_cdst: bool
    expert_username: str = ""


def calibration_step(script: CalibrationScript) -> StepInfo:
    settings = script.settings
    formats = {f.lower() for f in settings.input_data_formats}
    raw_names = tuple(sorted(settings.input_data_names)) if "raw" in formats else ()
    return StepInfo(
        name=settings.name,
        stage=script.stage,
        depends_on=tuple(settings.depends_on_names),
        raw_data_names=raw_names,
        needs_cdst="cdst" in formats,
        expert_username=settings.expert_username,
    )


def cdst_data_names(scripts: Iterable[CalibrationScript]) -> tuple[str, ...]:
    """The data tags the cDST production reconstructs: those that cDST-based calibrations read."""
    names: set[str] = set()
    for script in scripts:
        if "cdst" in {f.lower() for f in script.settings.input_data_formats}:
            names.update(script.settings.input_data_names)
    return tuple(sorted(names))


def build_steps(scripts: Mapping[str, CalibrationScript]) -> dict[str, StepInfo]:
    """All steps keyed by name; the cDST step exists only when some calibration reads cDSTs."""
    steps = {name: calibration_step(script) for name, script in scripts.items()}
    cdst_names = cdst_data_names(scripts.values())
    if cdst_names:
        pre = tuple(sorted(n for n, s in steps.items() if s.stage in PRE_CDST_STAGES))
        steps[CDST_STEP] = StepInfo(
            name=CDST_STEP,
            stage=Stage.ALIGNMENT,
            depends_on=pre,
            raw_data_names=cdst_names,
            needs_cdst=False,
            expert_username="",
        )
        for name, step in list(steps.items()):
            if step.needs_cdst:
                steps[name] = StepInfo(
                    name=step.name,
                    stage=step.stage,
                    depends_on=(*step.depends_on, CDST_STEP),
                    raw_data_names=step.raw_data_names,
                    needs_cdst=True,
                    expert_username=step.expert_username,
                )
    return steps


def step_graph(steps: Mapping[str, StepInfo]) -> CalibrationGraph:
    """The steps' dependency graph (its ``order()`` is the loop's run order)."""
    return CalibrationGraph({name: step.depends_on for name, step in steps.items()})
