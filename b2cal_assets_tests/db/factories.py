"""Small helpers that fill a test database through the repo functions."""

from __future__ import annotations

from sqlalchemy.orm import Session

from b2cal_assets.db.repo import catalog, processings, sites


def make_processing(s: Session, name: str = "proc_1", site: str = "kek", iov=(1, 0, 1, -1)):
    sites.ensure_site(s, site, backend="local", storage_root="/data")
    return processings.create_processing(
        s, name, "prompt", site, iov, global_tags=["gt_online"], window_hours=24.0, created_by="alice"
    )


def register_runs(s: Session, runs, tag: str = "hlt_mumu", site: str | None = None) -> list:
    files = []
    for exp, run in runs:
        f, _ = catalog.register_file(
            s,
            path=f"/skims/e{exp}/r{run}/{tag}.root",
            data_tag=tag,
            data_format="raw",
            exp=exp,
            run=run,
            run_info={"run_type": "physics", "magnet": "On", "data_quality": "Good", "exp": exp},
            n_events=100 * run,
            size_bytes=1000 * run,
            site_name=site,
            url=f"root://se.{site}//skims/e{exp}/r{run}/{tag}.root" if site else None,
        )
        files.append(f)
    return files
