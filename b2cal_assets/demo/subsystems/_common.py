"""What every demo collector and algorithm needs: reading its file and the expert_config limits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from b2cal_assets.caf.framework import AlgorithmContext, AlgorithmResult, AlgorithmStatus, CollectorContext
from b2cal_assets.demo.generator import EVENTS_TREE
from b2cal_assets.demo.reconstruction import CDST_TREE
from b2cal_assets.demo.skim_io import read_tree


def read_raw(path: str, ctx: CollectorContext, branches: Iterable[str]) -> dict[str, np.ndarray]:
    return read_tree(path, EVENTS_TREE, branches, max_events=ctx.expert_config.get("max_events_per_file"))


def read_cdst(path: str, ctx: CollectorContext, branches: Iterable[str]) -> dict[str, np.ndarray]:
    return read_tree(path, CDST_TREE, branches, max_events=ctx.expert_config.get("max_events_per_file"))


def config(ctx: CollectorContext | AlgorithmContext, key: str, default: Any) -> Any:
    value: Mapping[str, Any] = ctx.expert_config
    return value.get(key, default)


def runs_text(ctx: AlgorithmContext) -> str:
    return ", ".join(f"{r.exp}.{r.run}" for r in ctx.runs) or "no runs"


def not_enough(ctx: AlgorithmContext, what: str) -> AlgorithmResult:
    return AlgorithmResult(AlgorithmStatus.NOT_ENOUGH_DATA, message=f"runs {runs_text(ctx)}: {what}")


def ok(payloads: dict[str, dict[str, Any]], message: str) -> AlgorithmResult:
    return AlgorithmResult(AlgorithmStatus.OK, payloads=payloads, message=message)
