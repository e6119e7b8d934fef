"""Sites: calibration centres with their batch backend, storage root and sign-off policy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from b2cal_assets.db.errors import NotFound
from b2cal_assets.db.models import Site
from b2cal_assets.db.repo.rows import check_choice, check_fields, get_or_insert
from b2cal_assets.domain.remote_sites import DEFAULT_REMOTE_PYTHON, RemoteHost

SIGNOFF_POLICIES = ("automatic", "manual")


def ensure_site(s: Session, name: str, **fields: Any) -> Site:
    """The site ``name``, created if missing; the given fields are set on it either way."""
    check_fields(Site, fields)
    if "signoff_policy" in fields:
        check_choice("a site's signoff_policy", fields["signoff_policy"], SIGNOFF_POLICIES)
    site, _created = get_or_insert(s, Site, {"name": name}, fields)
    for key, value in fields.items():
        if getattr(site, key) != value:
            setattr(site, key, value)
    s.flush()
    return site


def get_site(s: Session, name: str) -> Site:
    site = s.scalars(select(Site).where(Site.name == name)).first()
    if site is None:
        raise NotFound.listing(
            "site", name, s.scalars(select(Site.name)), "Add it to the site configuration first"
        )
    return site


def list_sites(s: Session) -> list[Site]:
    return list(s.scalars(select(Site).order_by(Site.name)))


REMOTE_COLUMNS = ("submit_host", "ssh_key", "known_hosts", "remote_root", "remote_python")


def remote_columns(remote: RemoteHost | None) -> dict[str, str]:
    """The site columns of a submit host (all empty for a site whose scheduler is on this machine)."""
    if remote is None:
        return dict.fromkeys(REMOTE_COLUMNS, "")
    return {name: str(getattr(remote, name)) for name in REMOTE_COLUMNS}


def remote_host_of(site: Site) -> RemoteHost | None:
    """The site's submit host, or ``None`` when its scheduler runs on this machine."""
    if not site.submit_host:
        return None
    return RemoteHost(
        submit_host=site.submit_host,
        known_hosts=site.known_hosts,
        remote_root=site.remote_root,
        ssh_key=site.ssh_key,
        remote_python=site.remote_python or DEFAULT_REMOTE_PYTHON,
    )
