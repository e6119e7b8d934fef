"""One small synthetic dataset per test session, and the whole demo calibration chain run over it once.

Every test of a calibration reads the chain's result for that calibration, so the chain (which is what
``b2cal demo`` runs) is computed once and the suite stays fast.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from b2cal_assets.caf.framework import Conditions
from b2cal_assets.caf.scripts import CalibrationScript, ScriptSet, load_scripts
from b2cal_assets.demo.generator import GeneratedFile, generate
from b2cal_assets.demo.reconstruction import APPLIED_PAYLOADS, produce_cdst
from b2cal_assets.domain.filters import RunInfo, run_matches
from b2cal_assets.domain.iov import IoV
from b2cal_assets_tests.demo.driver import DriverResult, run_calibration

EVENTS_PER_RUN = 1200


@dataclass(frozen=True)
class CatalogFile:
    path: str
    data_tag: str
    data_format: str
    exp: int
    run: int
    run_info: dict[str, Any]


def catalog_of(files: list[GeneratedFile]) -> list[CatalogFile]:
    return [CatalogFile(f.path, f.data_tag, f.data_format, f.exp, f.run, f.run_info) for f in files]


def input_data_for(script: CalibrationScript, catalog: list[CatalogFile]) -> dict[str, dict[str, IoV]]:
    """What the loop gives ``get_calibrations``: files of the script's format passing its filters."""
    settings = script.settings
    data: dict[str, dict[str, IoV]] = {}
    for name in settings.input_data_names:
        filters = settings.input_data_filters.get(name, ())
        chosen = {}
        for f in catalog:
            if f.data_format not in settings.input_data_formats or f.data_tag != name:
                continue
            info = RunInfo(exp=f.exp, run=f.run, data_tag=f.data_tag, **f.run_info)
            if run_matches(filters, info):
                chosen[f.path] = IoV(f.exp, f.run, f.exp, f.run)
        data[name] = chosen
    return data


def make_cdsts(raw: list[CatalogFile], out_dir: Path, upstream: dict[str, Any]) -> list[CatalogFile]:
    conditions = Conditions({k: v for k, v in upstream.items() if k in APPLIED_PAYLOADS})
    groups: dict[tuple[int, int, str], list[CatalogFile]] = defaultdict(list)
    for f in raw:
        groups[(f.exp, f.run, f.data_tag)].append(f)
    cdsts = []
    for (exp, run, tag), files in sorted(groups.items()):
        path = produce_cdst([f.path for f in files], out_dir, conditions, exp=exp, run=run)
        cdsts.append(CatalogFile(str(path), tag, "cdst", exp, run, files[0].run_info))
    return cdsts


def run_script(
    script: CalibrationScript,
    catalog: list[CatalogFile],
    upstream: dict[str, Any],
    expert_config: dict[str, Any] | None = None,
) -> DriverResult:
    merged = {**script.settings.expert_config, **(expert_config or {})}
    (calibration,) = script.get_calibrations(input_data_for(script, catalog), expert_config=expert_config)
    return run_calibration(calibration, upstream=upstream, expert_config=merged)


@dataclass
class Chain:
    scripts: ScriptSet
    raw: list[CatalogFile]
    cdsts: list[CatalogFile]
    results: dict[str, DriverResult] = field(default_factory=dict)
    upstream_of: dict[str, dict[str, Any]] = field(default_factory=dict)
    payloads: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="session")
def demo_scripts() -> ScriptSet:
    scripts = load_scripts()
    assert not scripts.errors, scripts.errors
    return scripts


@pytest.fixture(scope="session")
def raw_catalog(tmp_path_factory) -> list[CatalogFile]:
    return catalog_of(generate(tmp_path_factory.mktemp("raw"), events_per_run=EVENTS_PER_RUN, seed=7))


@pytest.fixture(scope="session")
def chain(demo_scripts, raw_catalog, tmp_path_factory) -> Chain:
    """All demo calibrations in stage order, each seeing its upstream payloads; cDSTs after alignment."""
    result = Chain(demo_scripts, raw_catalog, [])
    for name, script in demo_scripts.calibrations.items():
        if script.settings.input_data_formats == {"cdst"} and not result.cdsts:
            result.cdsts = make_cdsts(raw_catalog, tmp_path_factory.mktemp("cdst"), result.payloads)
        catalog = result.cdsts if "cdst" in script.settings.input_data_formats else raw_catalog
        result.upstream_of[name] = dict(result.payloads)
        outcome = run_script(script, catalog, dict(result.payloads))
        result.results[name] = outcome
        result.payloads.update(outcome.payloads())
    return result
