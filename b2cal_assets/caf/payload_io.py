"""Payload files: the constants of one payload as a ROOT file that ROOT and uproot both read.

Layout: a TTree ``payload`` with one entry and one branch per constant (a scalar branch for a
number, a fixed-size array branch such as ``double[2][3]`` for an array), plus a ``TObjString``
``b2cal_shapes`` holding ``{constant: {"shape": [...], "dtype": "..."}}`` so that zero-size arrays,
which a TTree cannot hold, and the exact dtype come back unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from b2cal_assets.files import atomic_path

__all__ = ["md5sum", "read_payload", "write_payload"]

TREE_NAME = "payload"
SHAPES_NAME = "b2cal_shapes"


def write_payload(path: Path | str, constants: Mapping[str, np.ndarray | float]) -> Path:
    """Write ``constants`` to ``path`` atomically (a temporary file, then rename)."""
    path = Path(path)
    arrays = {name: _as_array(name, value) for name, value in constants.items()}
    if not arrays:
        raise ValueError(f"payload {path.name}: no constants to write")
    shapes = {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()}
    branches = {name: a for name, a in arrays.items() if a.size > 0}
    import uproot  # here: a collector subjob that reads no payload starts faster

    with atomic_path(path) as tmp, uproot.recreate(tmp) as f:
        f[SHAPES_NAME] = json.dumps(shapes, sort_keys=True)
        types: dict[str, Any] = {n: (a.dtype, a.shape) for n, a in branches.items()} or {"_": np.int8}
        tree = f.mktree(TREE_NAME, types)
        tree.extend({n: a[np.newaxis] for n, a in branches.items()} or {"_": np.zeros(1, np.int8)})
    return path


def read_payload(path: Path | str) -> dict[str, np.ndarray]:
    """The constants in a payload file, with the shapes and dtypes they were written with."""
    import uproot  # here, as in write_payload

    path = Path(path)
    try:
        with uproot.open(path) as f:
            shapes = json.loads(str(f[SHAPES_NAME])) if SHAPES_NAME in f else None
            tree = f[TREE_NAME]
            stored = tree.arrays(library="np") if tree.num_entries else {}
    except FileNotFoundError:
        raise FileNotFoundError(f"payload file {path} does not exist") from None
    except KeyError as exc:
        raise ValueError(f"{path} is not a payload file: it has no {exc}") from None
    if shapes is None:  # a payload written by something else: take the first entry of every branch
        return {name: _native(np.asarray(values[0])) for name, values in stored.items()}
    out = {}
    for name, info in shapes.items():
        dtype = np.dtype(info["dtype"])
        if name in stored:
            out[name] = _native(np.asarray(stored[name][0])).astype(dtype, copy=False).reshape(info["shape"])
        else:
            out[name] = np.zeros(info["shape"], dtype=dtype)
    return out


def md5sum(path: Path | str) -> str:
    """The payload checksum the conditions database uses."""
    digest = hashlib.md5()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _as_array(name: str, value: np.ndarray | float) -> np.ndarray:
    if not name or "/" in name or name == "_":
        raise ValueError(f"constant name {name!r} is not allowed; use a non-empty name without '/'")
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"constant {name!r} has dtype {array.dtype}; payload constants are numbers or arrays of numbers"
        )
    return _native(array)


def _native(array: np.ndarray) -> np.ndarray:
    return array.astype(array.dtype.newbyteorder("="), copy=False)
