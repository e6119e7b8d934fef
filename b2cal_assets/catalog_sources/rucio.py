"""What a site's Rucio announces: the skim datasets a processing needs, their files at the site's RSE.

Speaks Rucio through ``rucio-clients`` only; the calibration database is fed by ``loop/catalog_sync.py``.
A skim dataset is one run and one data tag. It is found by name (``dataset_glob`` per data tag); its
exp, run and data tag come from its DID metadata, else from its name (``name_regex``); the run's
metadata (run type, magnet, beam energy, data quality) from its DID metadata. Each key is configurable
(``RucioNaming``). Files come from ``list_replicas`` at the RSE, with ``updated_after`` on the
incremental scans; a full scan (no ``updated_after``) is what shows a replica that is gone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol

from b2cal_assets.domain.iov import IoV

RUN_META = ("run_type", "magnet", "beam_energy", "data_quality")
DEFAULT_META_KEYS: Mapping[str, str] = {
    "exp": "exp",
    "run": "run",
    "data_tag": "data_tag",
    "run_type": "run_type",
    "magnet": "magnet",
    "beam_energy": "beam_energy",
    "data_quality": "data_quality",
}
DEFAULT_DATASET_GLOB = "{data_tag}.e*"
DEFAULT_NAME_REGEX = r"^(?P<data_tag>[A-Za-z0-9_\-]+)\.e(?P<exp>\d+)\.r(?P<run>\d+)$"
DIDS_PER_CALL = 50  # datasets per list_replicas call: one request per 50 runs and tags


class RucioUnreachable(Exception):
    """The Rucio server did not answer; the message says where."""


class RucioRefused(Exception):
    """The Rucio server answered with an error (credentials, a scope it does not know, ...)."""


class RucioApi(Protocol):
    """The part of ``rucio.client.Client`` this module uses."""

    def list_dids(self, scope: str, filters: Any, did_type: Any = ..., long: bool = ...) -> Iterator[Any]: ...
    def get_metadata(self, scope: str, name: str, plugin: str = ...) -> dict[str, Any]: ...
    def get_metadata_bulk(
        self, dids: Any, inherit: bool = ..., plugin: str = ...
    ) -> Iterator[dict[str, Any]]: ...
    def list_replicas(self, dids: Any, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class RucioNaming:
    """How a site names its skim datasets and which DID metadata keys carry the run's facts."""

    scope: str = "belle"
    dataset_glob: str = DEFAULT_DATASET_GLOB
    name_regex: str = DEFAULT_NAME_REGEX
    meta_keys: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_META_KEYS))
    scheme: str = "root"

    def key(self, what: str) -> str:
        return self.meta_keys.get(what) or DEFAULT_META_KEYS[what]


@dataclass(frozen=True)
class Want:
    """Data a processing needs: its raw data tags inside its IoV."""

    data_tags: frozenset[str]
    iov: IoV


@dataclass(frozen=True)
class SkimDataset:
    """A skim dataset of one run and data tag, with the run's metadata."""

    did: str
    exp: int
    run: int
    data_tag: str
    run_info: dict[str, Any]


@dataclass(frozen=True)
class RucioFile:
    """A file replica at the site's RSE, as Rucio reports it."""

    did: str
    pfn: str
    size_bytes: int
    adler32: str
    n_events: int
    available: bool
    dataset: SkimDataset


@dataclass(frozen=True)
class Scan:
    """One look at the RSE: the files listed, and whether it was complete (every replica, any age)."""

    files: list[RucioFile]
    full: bool
    datasets: list[SkimDataset]

    def listed(self) -> set[str]:
        return {f.did for f in self.files if f.available}


class RucioCatalog:
    """The skim datasets and replicas one site's RSE holds, as a Rucio client reports them."""

    def __init__(self, client: RucioApi, rse: str, naming: RucioNaming | None = None) -> None:
        self.client = client
        self.rse = rse
        self.naming = naming or RucioNaming()
        self._regex = re.compile(self.naming.name_regex)

    def datasets(self, wants: Sequence[Want]) -> list[SkimDataset]:
        """The skim datasets (of the wanted tags, inside a wanted IoV) named in the scope.

        A name that says its run and tag costs no request; only a name that does not is looked up in
        the DID metadata (the run's metadata is read in ``scan``, for the datasets that changed).
        """
        patterns = {
            tag: self.naming.dataset_glob.format(data_tag=tag) for tag in sorted({t for w in wants for t in w.data_tags})
        }
        if not patterns:
            return []
        # one request for every tag: Rucio joins the filters of a list with OR
        filters = [{"name": p} for p in dict.fromkeys(patterns.values())]
        found: dict[str, SkimDataset] = {}
        for name in self.client.list_dids(self.naming.scope, filters, did_type="dataset"):
            name = name if isinstance(name, str) else name["name"]
            dataset = self._from_name(name) or self._with_metadata(name, {})
            if dataset is None or not fnmatchcase(name, patterns.get(dataset.data_tag, "")):
                continue  # not a wanted tag, or listed by another tag's pattern
            tag = dataset.data_tag
            if any(tag in w.data_tags and w.iov.contains_run(dataset.exp, dataset.run) for w in wants):
                found[dataset.did] = dataset
        return [found[d] for d in sorted(found)]

    def _from_name(self, name: str) -> SkimDataset | None:
        match = self._regex.match(name)
        if not match:
            return None
        parsed = match.groupdict()
        if parsed.get("exp") is None or parsed.get("run") is None or not parsed.get("data_tag"):
            return None
        return SkimDataset(
            f"{self.naming.scope}:{name}", int(parsed["exp"]), int(parsed["run"]), parsed["data_tag"], {}
        )

    def _with_metadata(self, name: str, parsed: Mapping[str, Any]) -> SkimDataset | None:
        """The dataset as its DID metadata describes it (one request)."""
        return self._described(name, self.client.get_metadata(self.naming.scope, name, plugin="ALL"), parsed)

    def _described(self, name: str, meta: Mapping[str, Any], parsed: Mapping[str, Any]) -> SkimDataset | None:
        """The dataset as ``meta`` describes it; what the metadata lacks comes from ``parsed`` (its name)."""
        values = {what: meta.get(self.naming.key(what)) for what in DEFAULT_META_KEYS}
        for what in ("exp", "run", "data_tag"):
            if values[what] in (None, ""):
                values[what] = parsed.get(what)
        if values["exp"] is None or values["run"] is None or not values["data_tag"]:
            return None
        run_info = {k: str(values[k]) for k in RUN_META if values[k] not in (None, "")}
        return SkimDataset(
            did=f"{self.naming.scope}:{name}",
            exp=int(values["exp"]),
            run=int(values["run"]),
            data_tag=str(values["data_tag"]),
            run_info=run_info,
        )

    def scan(self, wants: Sequence[Want], updated_after: datetime | None) -> Scan:
        """The files of the wanted datasets at the RSE: all of them (``updated_after=None``), or those
        whose replica changed since then (new, state changed, checksum corrected).

        Requests: one ``list_dids`` for all the data tags, one ``list_replicas`` per 50 datasets, and for the
        datasets with changed files one ``get_metadata_bulk`` per 50 datasets and one per 500 files.
        """
        datasets = self.datasets(wants)
        by_did = {d.did: d for d in datasets}
        changed: dict[str, list[dict[str, Any]]] = {}
        for chunk in _chunks(datasets, DIDS_PER_CALL):
            replicas = self.client.list_replicas(
                [self._did(d.did) for d in chunk],
                schemes=[self.naming.scheme],
                rse_expression=self.rse,
                all_states=True,
                resolve_parents=True,
                updated_after=updated_after,
            )
            for replica in replicas:
                parent = next((p for p in replica.get("parents", []) if p in by_did), None)
                if parent is not None:
                    changed.setdefault(parent, []).append(replica)
        described = self._bulk_metadata(sorted(changed), DIDS_PER_CALL, plugin="ALL")
        file_dids = sorted({f"{r['scope']}:{r['name']}" for found in changed.values() for r in found})
        events = {
            did: int(meta.get("events") or 0) for did, meta in self._bulk_metadata(file_dids, 500).items()
        }
        files: list[RucioFile] = []
        for did, found in sorted(changed.items()):
            listed = by_did[did]
            parsed = {"exp": listed.exp, "run": listed.run, "data_tag": listed.data_tag}
            dataset = self._described(self._did(did)["name"], described.get(did, {}), parsed) or listed
            for replica in found:
                file = self._file(replica, dataset, events)
                if file is not None:
                    files.append(file)
        return Scan(files=files, full=updated_after is None, datasets=datasets)

    @staticmethod
    def _did(did: str) -> dict[str, str]:
        scope, _, name = did.partition(":")
        return {"scope": scope, "name": name}

    def _bulk_metadata(
        self, dids: Sequence[str], per_call: int, plugin: str = "DID_COLUMN"
    ) -> dict[str, Any]:
        """``{did: metadata}`` with one ``get_metadata_bulk`` request per ``per_call`` DIDs."""
        found: dict[str, Any] = {}
        for start in range(0, len(dids), per_call):
            chunk = [self._did(d) for d in dids[start : start + per_call]]
            for meta in self.client.get_metadata_bulk(chunk, plugin=plugin):
                found[f"{meta['scope']}:{meta['name']}"] = meta
        return found

    def _file(
        self, replica: Mapping[str, Any], dataset: SkimDataset, events: Mapping[str, int]
    ) -> RucioFile | None:
        did = f"{replica['scope']}:{replica['name']}"
        pfns = [
            p for p in replica.get("rses", {}).get(self.rse, []) if p.startswith(self.naming.scheme + "://")
        ]
        state = str(replica.get("states", {}).get(self.rse, "AVAILABLE"))
        if not pfns:
            return None
        return RucioFile(
            did=did,
            pfn=pfns[0],
            size_bytes=int(replica.get("bytes") or 0),
            adler32=str(replica.get("adler32") or ""),
            n_events=events.get(did, 0),
            available=state == "AVAILABLE",
            dataset=dataset,
        )


def _chunks(items: Sequence[SkimDataset], size: int) -> Iterable[Sequence[SkimDataset]]:
    """``items`` in slices of ``size``: one request each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def connect(
    host: str,
    *,
    auth_host: str = "",
    account: str,
    username: str = "",
    password: str = "",
    auth_type: str = "userpass",
    vo: str = "",
    ca_cert: str = "",
    timeout_s: float = 30.0,
) -> RucioApi:
    """A ``rucio.client.Client`` for ``host``: ``RucioUnreachable`` when it does not answer, ``RucioRefused``
    when it does but will not serve (bad credentials)."""
    from rucio.client import Client  # deferred: the client library is needed only where Rucio is used
    from rucio.common.exception import RucioException

    creds = {"username": username, "password": password} if auth_type == "userpass" else None
    try:
        client = Client(
            rucio_host=host,
            auth_host=auth_host or host,
            account=account,
            auth_type=auth_type,
            creds=creds,
            ca_cert=ca_cert or None,
            vo=vo or None,
            timeout=timeout_s,
        )
        client.ping()
    except unreachable_errors() as exc:
        raise RucioUnreachable(f"Rucio at {host}: {_first_line(exc)}") from None
    except RucioException as exc:
        raise RucioRefused(f"Rucio at {host}: {type(exc).__name__}: {_first_line(exc)}") from None
    return client  # type: ignore[no-any-return]


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Rucio did not answer" (worth a retry), not "Rucio said no"."""
    # deferred, as in connect
    from rucio.common.exception import ServerConnectionException, ServiceUnavailable

    return (RucioUnreachable, ServerConnectionException, ServiceUnavailable, OSError)


def refused_errors() -> tuple[type[BaseException], ...]:
    """The exceptions of a Rucio that answered with an error (retrying at once would not help)."""
    from rucio.common.exception import RucioException  # deferred, as in connect

    return (RucioRefused, RucioException)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:300]
