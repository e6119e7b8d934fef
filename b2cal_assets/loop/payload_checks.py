"""Payload validity: the rules that block a payload from being used downstream."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from b2cal_assets.caf.payload_io import read_payload
from b2cal_assets.db.repo import catalog
from b2cal_assets.domain.iov import IoV
from b2cal_assets.loop.records import PayloadView
from b2cal_assets.loop.service import LoopService


def iov_inside(iov: IoV, processing: IoV) -> bool:
    """A payload starts inside the processing; closed payloads also end inside it (open-ended are allowed)."""
    if not processing.contains_run(iov.exp_low, iov.run_low):
        return False
    return iov.is_open_ended or processing.contains_run(iov.exp_high, iov.run_high)


def validity_problems(
    service: LoopService, processing: str, calibration: str, produced_payloads: Iterable[str] | None = None
) -> tuple[list[str], list[str]]:
    """``check_payloads`` over the calibration's current payloads and the catalogued runs of the processing."""
    iov = service.processing_iov(processing)
    with service.session() as s:
        runs = catalog.runs_in(
            s, exp_low=iov.exp_low, run_low=iov.run_low, exp_high=iov.exp_high, run_high=iov.run_high
        )
    return check_payloads(
        service.current_payloads(processing, calibration), iov, produced_payloads=produced_payloads, runs=runs
    )


def check_payloads(
    payloads: list[PayloadView],
    processing_iov: IoV,
    produced_payloads: Iterable[str] | None = None,
    runs: Iterable[tuple[int, int]] = (),
) -> tuple[list[str], list[str]]:
    """Problems found (empty = valid) and a one-line summary per payload.

    Every payload name must have a current revision for each of ``runs`` (the processing's runs): a run
    left without one would be calibrated by nothing.
    """
    problems: list[str] = []
    summary: list[str] = []
    if not payloads:
        return ["no payloads were recorded for the latest attempt"], summary
    names = {p.name for p in payloads}
    for missing in sorted(set(produced_payloads or ()) - names):
        problems.append(f"payload {missing} is declared in produced_payloads but was not produced")
    for name in sorted(names):
        iovs = [p.iov for p in payloads if p.name == name]
        uncovered = [f"{e},{r}" for e, r in runs if not any(IoV(*i).contains_run(e, r) for i in iovs)]
        if uncovered:
            shown = ", ".join(uncovered[:10]) + (
                f" and {len(uncovered) - 10} more" if len(uncovered) > 10 else ""
            )
            plural = "s" if len(uncovered) > 1 else ""
            problems.append(f"payload {name} has no current revision for run{plural} {shown}")
    for p in payloads:
        label = f"{p.name} rev {p.revision}"
        iov = p.iov
        if not iov_inside(iov, processing_iov):
            problems.append(f"{label}: IoV {iov} is not inside the processing's IoV {processing_iov}")
        try:
            constants = read_payload(p.file)
        except Exception as exc:  # any unreadable file is a finding, not a crash
            problems.append(f"{label}: {p.file} is not readable: {exc}")
            continue
        bad = [k for k, v in constants.items() if not np.all(np.isfinite(np.asarray(v, dtype=float)))]
        if bad:
            problems.append(f"{label}: non-finite values in {', '.join(sorted(bad))}")
        summary.append(f"{label} {iov}: {len(constants)} constants")
    return problems, summary
