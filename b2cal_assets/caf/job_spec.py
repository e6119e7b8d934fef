"""The spec file of a job b2cal writes for the site (a collector subjob, a cDST job): the same JSON
round trip on both sides, and the job's ``python -m <module> SPEC.json`` entry point."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["JsonSpec", "spec_main"]

S = TypeVar("S", bound="JsonSpec")  # not typing.Self: a site's Python may be older than 3.11


class JsonSpec:
    """A job's spec as its JSON file: ``fields`` one level deep, written with ``indent=1``; a spec
    class says only how its fields become JSON values and back."""

    def fields(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_fields(cls: type[S], data: dict[str, Any]) -> S:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.fields(), indent=1)

    @classmethod
    def from_json(cls: type[S], text: str) -> S:
        return cls.from_fields(json.loads(text))


def spec_main(argv: Sequence[str] | None, module: str, run: Callable[[str], object]) -> int:
    """The job's entry point: ``run`` gets the text of the one spec file named; 2 for another command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(f"usage: python -m {module} SPEC.json", file=sys.stderr)
        return 2
    run(Path(args[0]).read_text())
    return 0
