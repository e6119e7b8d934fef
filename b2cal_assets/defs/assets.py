"""One payloads asset and one sign-off asset per calibration, the cDST production, and the skims."""

import inspect
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import dagster as dg

from b2cal_assets.defs.configs import SIGNOFF_FIELD, signoff_config, submit_config, submit_schema
from b2cal_assets.defs.hops import launch_ready_dependents
from b2cal_assets.defs.keys import CDST_KEY, SIGNOFF_CHECK, payloads_key, signoff_key, skim_key
from b2cal_assets.defs.partitions import partitioned_checks, processing_partitions
from b2cal_assets.defs.resources import CalibrationLoopResource
from b2cal_assets.defs.run_tags import check_authority, submitted_by
from b2cal_assets.defs.running import again_while_unreachable, run_calibration_attempt, run_cdst_production
from b2cal_assets.domain.states import CalibrationState
from b2cal_assets.loop.records import AUTO_USER
from b2cal_assets.loop.service import LoopError
from b2cal_assets.loop.steps import CDST_STEP, StepInfo

BACKEND_RESOURCE_KEYS = ("local_backend", "slurm_backend", "htcondor_backend", "lsf_backend")


_SIGNATURES: dict[str, inspect.Signature] = {}
F = TypeVar("F", bound=Callable[..., Any])


def _known_signature(fn: F) -> F:
    """``fn`` with its signature worked out once per kind of compute function: Dagster inspects an
    op function's signature over a dozen times while building it, which for hundreds of calibrations
    was a large part of loading the code location. Dagster honours an explicit ``__signature__``."""
    sig = _SIGNATURES.get(fn.__qualname__)
    if sig is None:
        sig = _SIGNATURES[fn.__qualname__] = inspect.signature(fn)
    fn.__signature__ = sig  # type: ignore[attr-defined]
    return fn


def skim_specs(steps: Iterable[StepInfo]) -> list[dg.AssetSpec]:
    tags = sorted({tag for step in steps for tag in step.raw_data_names})
    return [
        dg.AssetSpec(
            key=skim_key(tag),
            partitions_def=processing_partitions,
            group_name="skims",
            description=f"Calibration skim {tag}: reported by the data-arrival sensor from the data catalog.",
            kinds={"root"},
        )
        for tag in tags
    ]


def _deps(step: StepInfo) -> list[dg.AssetKey]:
    keys = [CDST_KEY if dep == CDST_STEP else signoff_key(dep) for dep in step.depends_on]
    keys += [skim_key(tag) for tag in step.raw_data_names]
    return keys


def expert_description(step: StepInfo, script) -> str:
    """What the asset is, for its expert: the script's description, who owns it, what it reads and
    waits for, what it writes, its settings, and where to submit (Markdown; no server path)."""
    settings = script.settings
    formats = ", ".join(sorted(f.lower() for f in settings.input_data_formats)) or "no"
    names = ", ".join(sorted(settings.input_data_names)) or "none"
    after = ", ".join(step.depends_on) or "nothing (it starts when its data is there)"
    config = ", ".join(f"`{k}` = {json.dumps(v)}" for k, v in sorted((settings.expert_config or {}).items()))
    return "\n\n".join(
        [
            settings.description or step.name,
            f"**Expert:** {settings.expert_username or 'nobody'} · **stage:** {step.stage.value}",
            f"**Reads:** {formats} data of {names}; **waits for:** {after}",
            f"**Writes payloads:** {', '.join(settings.produced_payloads) or 'none declared'}",
            f"**Settings** (expert_config defaults): {config or 'none'}",
            "**To submit:** Materialize this asset for a processing partition with your expert_config, "
            "or use the calibration page `/b2cal/processing/<processing>/"
            f"{quote(step.name, safe='')}`. Script: `{Path(script.file).name}`",
        ]
    )


def payloads_asset(step: StepInfo, script) -> dg.AssetsDefinition:
    settings = script.settings

    @dg.asset(
        key=payloads_key(step.name),
        partitions_def=processing_partitions,
        group_name=step.stage.value,
        deps=_deps(step),
        description=expert_description(step, script),
        metadata={
            "calibration": step.name,  # the real name; the key holds its Dagster form
            "expert_username": settings.expert_username,
            "script": str(script.file),
            "input_data_names": ", ".join(sorted(settings.input_data_names)),
            "expert_config_defaults": json.dumps(settings.expert_config or {}, sort_keys=True),
        },
        kinds={"caf"},
        config_schema=submit_schema(settings.expert_config or {}),
        required_resource_keys={"loop", *BACKEND_RESOURCE_KEYS},
        output_required=False,  # a submission held until the deadline materialises nothing, and is no failure
    )
    @_known_signature
    def _payloads(context: dg.AssetExecutionContext):
        config = submit_config(context)
        service = context.resources.loop.service()
        check_authority(context, service, step.name, "launch")
        result = run_calibration_attempt(context, config, service, step.name, submitted_by(context))
        if result is not None:
            yield result

    return _payloads


def _signoff_check_spec(calibration: str) -> dg.AssetCheckSpec:
    """Partitioned like its asset, so each processing's verdict is its own."""
    with partitioned_checks():
        return dg.AssetCheckSpec(
            SIGNOFF_CHECK,
            asset=signoff_key(calibration),
            partitions_def=processing_partitions,
            description="The payloads were accepted; fails when they were rejected, wherever the "
            "decision was made (here, the calibration page or the b2cal command).",
        )


def signoff_asset(step: StepInfo) -> dg.AssetsDefinition:
    @dg.asset(
        key=signoff_key(step.name),
        partitions_def=processing_partitions,
        group_name=step.stage.value,
        deps=[payloads_key(step.name)],
        description=f"Sign-off of {step.name}'s payloads: automatic at automatic sites once the checks pass, "
        "otherwise the expert materialises it with accept or reject.",
        metadata={"calibration": step.name},
        kinds={"signoff"},
        config_schema=SIGNOFF_FIELD,
        check_specs=[_signoff_check_spec(step.name)],
        required_resource_keys={"loop"},  # a key, not a typed parameter: no resource inspection per asset
    )
    @_known_signature
    def _signoff(context: dg.AssetExecutionContext):
        config = signoff_config(context)
        service = context.resources.loop.service()
        check_authority(context, service, step.name, "sign off")
        processing = context.partition_key
        by = submitted_by(context)
        automatic = by == AUTO_USER
        site = again_while_unreachable(
            context, f"reading the site of {processing}", lambda: service.site_of(processing)
        )
        if automatic and site.signoff_policy != "automatic":
            raise dg.Failure(
                description=f"site {site.name} signs off by hand: the expert materialises {signoff_key(step.name).to_user_string()}"
            )
        tries = [0]

        def decide() -> str:
            tries[0] += 1  # a retry may follow a COMMIT whose answer was lost: the loop then records it once
            return service.sign_off(
                processing,
                step.name,
                decision=config.decision,
                by=by,
                comment=config.comment,
                automatic=automatic,
                dagster_run_id=context.run.run_id,
                retried=tries[0] > 1,
            )

        try:
            state = again_while_unreachable(
                context, f"recording the sign-off of {step.name} in {processing}", decide
            )
        except LoopError as exc:
            raise dg.Failure(description=str(exc)) from None
        context.log.info(f"{step.name} in {processing}: {state} by {by}")
        if state == CalibrationState.SIGNED_OFF:
            launch_ready_dependents(context, service, processing)  # not at the next sensor tick
        metadata: dict[str, Any] = {
            "decision": config.decision,
            "by": by,
            "automatic": automatic,
            "comment": config.comment,
        }
        check_key = dg.AssetCheckKey(signoff_key(step.name), SIGNOFF_CHECK)
        checks = []
        if check_key in context.selected_asset_check_keys:
            verb = "accepted" if config.decision == "accept" else "rejected"
            checks.append(
                dg.AssetCheckResult(
                    check_name=SIGNOFF_CHECK,
                    passed=config.decision == "accept",
                    description=f"{verb} by {by}" + (f": {config.comment}" if config.comment else ""),
                    metadata=metadata,
                )
            )
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    return _signoff


def cdst_asset(step: StepInfo) -> dg.AssetsDefinition:
    @dg.asset(
        key=CDST_KEY,
        partitions_def=processing_partitions,
        group_name="cdst_production",
        deps=_deps(step),
        description="cDST production: raw skims reconstructed with the signed-off alignment and pre-tracking "
        "payloads applied, in batch jobs at the processing's site (one per run, or per chunk of its "
        "files); the input of post-tracking calibrations.",
        kinds={"root"},
        required_resource_keys={"loop", *BACKEND_RESOURCE_KEYS},
    )
    @_known_signature
    def _cdst(context: dg.AssetExecutionContext):
        loop: CalibrationLoopResource = context.resources.loop
        return run_cdst_production(
            context, loop.service(), step, loop.cdst_producer, files_per_job=loop.cdst_files_per_job
        )

    return _cdst


def build_assets(steps: dict[str, StepInfo], scripts, errors: dict[str, str] | None = None) -> list:
    """The assets; a calibration whose definition Dagster still refuses is left out and its reason put
    in ``errors`` (calibration name -> message), so one bad script never takes the others down."""
    assets: list = list(skim_specs(steps.values()))
    for name, step in steps.items():
        if name == CDST_STEP:
            assets.append(cdst_asset(step))
            continue
        try:
            built = [payloads_asset(step, scripts.calibrations[name]), signoff_asset(step)]
        except dg.DagsterInvalidDefinitionError as exc:
            if errors is None:
                raise
            errors[name] = f"{scripts.calibrations[name].file}: Dagster refuses the definition: {exc}"
            continue
        assets.extend(built)
    return assets
