"""Setting up a loop: sites, processings, data arrival into the catalog, and local global tags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from b2cal_assets import home
from b2cal_assets.caf.localdb import write_outputdb
from b2cal_assets.db import engine as db_engine
from b2cal_assets.db.repo import audit, catalog, processings, sites
from b2cal_assets.domain.iov import IoV
from b2cal_assets.domain.processing import ProcessingSpec, SignoffPolicy, SiteSpec, validate_processing_name
from b2cal_assets.domain.settings import ContractError
from b2cal_assets.domain.site_runner import RunnerKind
from b2cal_assets.domain.states import ProcessingState
from b2cal_assets.loop.records import SiteView, site_view


def _session(url: str | None) -> AbstractContextManager[Session]:
    return db_engine.session_scope(db_engine.make_engine(url or db_engine.database_url()))


def ensure_site(spec: SiteSpec, url: str | None = None) -> None:
    with _session(url) as s:
        sites.ensure_site(
            s,
            spec.name,
            backend=spec.backend,
            backend_args=dict(spec.backend_args),
            storage_root=spec.storage_root,
            path_prefix=spec.path_prefix,
            signoff_policy=str(spec.signoff_policy),
            hold_until_deadline=spec.hold_until_deadline,
            runner=str(spec.runner),
            runner_args=dict(spec.runner_args),
            **sites.remote_columns(spec.remote),
        )


OVERLAP_WHY = (
    "two processings over the same runs calibrate them twice and both claim those runs in the "
    "conditions; pass --allow-overlap if that is meant (e.g. a reprocessing)"
)


def create_processing(
    spec: ProcessingSpec, created_by: str, url: str | None = None, *, allow_overlap: bool = True
) -> list[str]:
    """Register ``spec``; returns warnings (no data yet). Unknown global tags are refused.

    With ``allow_overlap=False`` (what the CLI passes by default) an IoV overlapping a processing
    that is not cancelled is refused too.
    """
    validate_processing_name(spec.name)
    unknown = [t for t in spec.global_tags if not (home.globaltag_dir(t) / "database.txt").is_file()]
    if unknown:
        raise ContractError(
            "global_tags",
            f"unknown global tag {unknown[0]!r}: no {home.globaltag_dir(unknown[0])}/database.txt",
        )
    warnings = []
    with _session(url) as s:
        sites.get_site(s, spec.site)  # an unknown site is named before any overlap
        if not allow_overlap:
            for other in processings.list_processings(s):
                other_iov = IoV(other.exp_low, other.run_low, other.exp_high, other.run_high)
                if (
                    other.state != ProcessingState.CANCELLED
                    and other.name != spec.name
                    and other_iov.overlaps(spec.iov)
                ):
                    same = "the same IoV as" if other_iov == spec.iov else "an IoV overlapping"
                    raise ContractError(
                        "iov", f"{spec.iov} is {same} processing {other.name} ({other_iov}): {OVERLAP_WHY}"
                    )
        low, high = spec.iov.start, (spec.iov.exp_high, spec.iov.run_high)
        found = catalog.files_for(
            s, exp_low=low.exp, run_low=low.run, exp_high=high[0], run_high=high[1], data_tags=None
        )
        if not found:
            warnings.append(
                f"no data registered for IoV {spec.iov} yet; the processing waits until runs arrive"
            )
        processings.create_processing(
            s,
            spec.name,
            kind=str(spec.kind),
            site_name=spec.site,
            iov=tuple(spec.iov),
            global_tags=list(spec.global_tags),
            window_hours=spec.window_hours,
            created_by=created_by,
        )
        audit.record_audit(
            s,
            created_by,
            "create_processing",
            spec.name,
            "",
            {"site": spec.site, "iov": str(spec.iov), "global_tags": list(spec.global_tags)},
        )
    return warnings


def cancel_processing(name: str, by: str, reason: str = "", url: str | None = None) -> str:
    """Close ``name`` for good: the loop no longer opens, launches or retries its steps; returns its old state."""
    with _session(url) as s:
        old = processings.get_processing(s, name).state
        if old == ProcessingState.CANCELLED:
            raise ContractError("processing", f"{name} is already cancelled")
        processings.set_processing_state(s, name, ProcessingState.CANCELLED)
        audit.record_audit(s, by, "cancel_processing", name, "", {"reason": reason, "was": old})
    return old


def register_files(files: Iterable[Any], site_name: str | None = None, url: str | None = None) -> int:
    """Register generated or transferred skim files in the data catalog; returns how many were new.

    One bulk registration per 5,000 files (``catalog.register_files``), all in one transaction.
    """
    entries = [
        {
            "path": str(f.path),
            "data_tag": f.data_tag,
            "data_format": f.data_format,
            "exp": f.exp,
            "run": f.run,
            "run_info": dict(f.run_info),
            "n_events": f.n_events,
            "size_bytes": f.size_bytes,
        }
        for f in files
    ]
    new = 0
    with _session(url) as s:
        for start in range(0, len(entries), 5000):
            new += catalog.register_files(s, entries[start : start + 5000], site_name=site_name)
    return new


ALL_RUNS = IoV(0, 0, -1, -1)


def write_global_tag(tag: str, payloads: Mapping[str, Mapping[str, Any]], iov: IoV = ALL_RUNS) -> Path:
    """A local global tag holding ``payloads`` (name -> constants) valid for ``iov``."""
    directory = home.globaltag_dir(tag)
    write_outputdb(
        directory,
        keep=[],
        new=[
            (name, iov, {k: np.asarray(v) for k, v in constants.items()})
            for name, constants in payloads.items()
        ],
    )
    return directory


def site_spec(name: str, url: str | None = None) -> SiteSpec:
    """The site ``name`` as it is stored (``NotFound`` naming the known ones otherwise)."""
    with _session(url) as s:
        view = site_view(sites.get_site(s, name))
    # a SiteView has a SiteSpec's fields, the choices as the row's text
    choices = {"signoff_policy": SignoffPolicy(view.signoff_policy), "runner": RunnerKind(view.runner)}
    return SiteSpec(**(vars(view) | choices))


def list_sites(url: str | None = None) -> list[SiteView]:
    with _session(url) as s:
        return [site_view(x) for x in sites.list_sites(s)]
