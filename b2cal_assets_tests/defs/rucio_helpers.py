"""Announcing toy skims in the test Rucio: real files in the xrootd export, replicas and datasets."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from b2cal_assets.defs.rucio import RucioCatalogResource
from b2cal_assets_tests.defs import toy
from b2cal_assets_tests.fixtures.rucio import RucioRse

RUN_META = {"run_type": "physics", "magnet": "On", "beam_energy": "4S", "data_quality": "Good"}


def dataset_name(tag: str, exp: int, run: int) -> str:
    """The default naming (``{data_tag}.e{exp}.r{run}``)."""
    return f"{tag}.e{exp:04d}.r{run:05d}"


def announce(rse: RucioRse, files: list[toy.ToyFile], meta: dict | None = None) -> dict[str, str]:
    """Each toy file as a replica on the RSE, one dataset per run and tag; returns ``{file name: PFN}``."""
    pfns: dict[str, str] = {}
    by_dataset: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    for f in files:
        name = Path(f.path).name
        pfns[name] = rse.add_file(name, Path(f.path).read_bytes(), events=f.n_events)
        by_dataset[(f.data_tag, f.exp, f.run)].append(name)
    for (tag, exp, run), names in sorted(by_dataset.items()):
        rse.add_dataset(
            dataset_name(tag, exp, run),
            names,
            {"exp": exp, "run": run, "data_tag": tag, **RUN_META, **(meta or {})},
        )
    return pfns


def resource_for(rse: RucioRse, site: str, **overrides) -> RucioCatalogResource:
    server = rse.server
    settings = {
        "host": server.host,
        "account": server.account,
        "username": server.username,
        "password": server.password,
        "site_rses": {site: rse.rse},
        "scope": rse.scope,
        "retry_wait_s": 0.01,
        **overrides,
    }
    return RucioCatalogResource(**settings)
