"""One cDST production job: ``python -m b2cal_assets.caf.cdst_job SPEC.json``.

The job runs at the site, beside the collector subjobs: it imports the producer named in its spec
(``B2CAL_CDST_PRODUCER``, ``module:function``), gives it the raw files of one run (or a chunk of them)
and the conditions of the signed-off upstream payloads (a chain of outputdb directories), and writes
the list of what it produced to ``cdst_outputs.json`` at the top of its directory, the one file a
remote site sends back. The cDST files stay in ``cdst/`` below it, where the site's jobs read them.
Each file's number of events is read from the file itself (the entries of its event tree, with uproot
where the site has it), so the catalogue knows it without opening the file again.
Nothing here needs the orchestrator: no settings, no database, only numpy and the producer's imports.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2cal_assets.caf.job_spec import JsonSpec, spec_main
from b2cal_assets.caf.localdb import ConditionsChain
from b2cal_assets.domain.iov import ExpRun
from b2cal_assets.files import atomic_write_text

__all__ = [
    "CDST_OUTPUTS_FILE",
    "CDST_OUT_DIR",
    "CdstJobSpec",
    "CdstOutput",
    "events_in",
    "load_producer",
    "read_outputs",
    "run_cdst_job",
]

CDST_OUTPUTS_FILE = "cdst_outputs.json"
CDST_OUT_DIR = "cdst"
DEFAULT_PRODUCER_FUNCTION = "produce_cdst"
_EVENT_TABLES = ("TTree", "ROOT::RNTuple")  # what uproot writes a dict of arrays as (RNTuple in uproot 5.6+)


@dataclass(frozen=True)
class CdstJobSpec(JsonSpec):
    """What one cDST job needs, with every path as the job sees it (under a remote site's root)."""

    producer: str
    data_tag: str
    exp: int
    run: int
    files: list[str]
    conditions_chain: list[Path] = field(default_factory=list)
    out_dir: Path = Path(CDST_OUT_DIR)
    outputs: Path = Path(CDST_OUTPUTS_FILE)

    def fields(self) -> dict[str, Any]:
        return {
            "producer": self.producer,
            "data_tag": self.data_tag,
            "exp": self.exp,
            "run": self.run,
            "files": list(self.files),
            "conditions_chain": [str(p) for p in self.conditions_chain],
            "out_dir": str(self.out_dir),
            "outputs": str(self.outputs),
        }

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> CdstJobSpec:
        return cls(
            producer=str(data["producer"]),
            data_tag=str(data["data_tag"]),
            exp=int(data["exp"]),
            run=int(data["run"]),
            files=[str(f) for f in data["files"]],
            conditions_chain=[Path(p) for p in data.get("conditions_chain", [])],
            out_dir=Path(data.get("out_dir", CDST_OUT_DIR)),
            outputs=Path(data.get("outputs", CDST_OUTPUTS_FILE)),
        )


@dataclass(frozen=True)
class CdstOutput:
    """One cDST file a job made: its path where the site's jobs open it."""

    path: str
    data_tag: str
    exp: int
    run: int
    size_bytes: int
    n_events: int = 0  # 0: not known (not a ROOT file, or no uproot at the site)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "data_tag": self.data_tag,
            "exp": self.exp,
            "run": self.run,
            "size_bytes": self.size_bytes,
            "n_events": self.n_events,
        }


def load_producer(reference: str) -> Callable[..., Any]:
    """``module:function`` (the function defaults to ``produce_cdst``) imported."""
    module_name, _, function = reference.partition(":")
    return getattr(importlib.import_module(module_name), function or DEFAULT_PRODUCER_FUNCTION)  # type: ignore[no-any-return]


def run_cdst_job(spec: CdstJobSpec, *, log: Callable[..., Any] = print) -> list[CdstOutput]:
    """Produce the cDST of ``spec`` and write the outputs file; returns what was produced."""
    produce = load_producer(spec.producer)
    conditions = ConditionsChain(spec.conditions_chain).at(ExpRun(spec.exp, spec.run))
    log(f"cDST {spec.data_tag} exp {spec.exp} run {spec.run}: {len(spec.files)} raw file(s)", flush=True)
    made = produce(list(spec.files), spec.out_dir, conditions, exp=spec.exp, run=spec.run)
    paths = [made] if isinstance(made, str | Path) else list(made)
    outputs = []
    for path in paths:
        path = Path(path).absolute()
        if not path.is_file():
            raise FileNotFoundError(f"the producer {spec.producer} returned {path}, which is not a file")
        events = events_in(path)
        outputs.append(
            CdstOutput(str(path), spec.data_tag, spec.exp, spec.run, path.stat().st_size, events or 0)
        )
        counted = f"{events} events" if events is not None else "events not countable: no ROOT tree read"
        log(f"wrote {path} ({path.stat().st_size} bytes, {counted})", flush=True)
    atomic_write_text(spec.outputs, json.dumps({"files": [o.to_json() for o in outputs]}, indent=1))
    return outputs


def events_in(path: Path) -> int | None:
    """The events of a cDST file: the entries of its tree ``tree`` (a basf2 file's), else of its
    largest tree (TTree or RNTuple); ``None`` when it cannot be read as ROOT here (no uproot, another format)."""
    try:
        import uproot  # in the job: the site's Python has it when its producer writes ROOT with it
    except ImportError:
        return None
    try:
        with uproot.open(path) as file:
            entries = {
                key.partition(";")[0]: int(file[key].num_entries)
                for key, kind in file.classnames().items()
                if kind in _EVENT_TABLES
            }
    except (OSError, ValueError, KeyError):
        return None
    if not entries:
        return None
    return entries.get("tree", max(entries.values()))


def read_outputs(path: Path) -> list[CdstOutput]:
    """A job's ``cdst_outputs.json`` back; ``ValueError`` names the file when it is missing or bad."""
    try:
        data = json.loads(Path(path).read_text())
        return [
            CdstOutput(
                str(f["path"]),
                str(f["data_tag"]),
                int(f["exp"]),
                int(f["run"]),
                int(f["size_bytes"]),
                int(f.get("n_events", 0)),  # a job of an earlier version did not count them
            )
            for f in data["files"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: no readable list of cDST outputs ({type(exc).__name__}: {exc})") from None


def main(argv: Sequence[str] | None = None) -> int:
    return spec_main(argv, "b2cal_assets.caf.cdst_job", lambda text: run_cdst_job(CdstJobSpec.from_json(text)))


if __name__ == "__main__":
    sys.exit(main())
