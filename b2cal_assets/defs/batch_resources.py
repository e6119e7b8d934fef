"""Resources of the lab batch systems (Slurm, HTCondor, LSF); configured per deployment."""

from __future__ import annotations

import dagster as dg

from b2cal_assets.defs.resources import LocalBackendResource


def batch_backend_resources() -> dict[str, dg.ConfigurableResource]:
    # Until the batch backends land, every key resolves to the local pool so definitions load.
    return {key: LocalBackendResource() for key in ("slurm_backend", "htcondor_backend", "lsf_backend")}
