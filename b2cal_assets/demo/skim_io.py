"""Reading the demo's ROOT files (raw skims and cDSTs) with uproot only, so ``root://`` URLs work too."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def read_tree(
    path: str, tree: str, branches: Iterable[str], *, max_events: int | None = None
) -> dict[str, np.ndarray]:
    """The named branches of ``tree`` as numpy arrays (fixed-size arrays come back 2-D)."""
    names = list(branches)
    import uproot  # when a file is read, not when the code location loads

    with uproot.open(path) as file:
        if tree not in file:
            raise ValueError(f"{path}: no TTree {tree!r} (found {sorted(file.keys(cycle=False))})")
        ttree = file[tree]
        missing = [name for name in names if name not in ttree]
        if missing:
            raise ValueError(f"{path}: TTree {tree!r} has no branches {missing}")
        stop = None if not max_events else int(max_events)
        return ttree.arrays(names, library="np", entry_stop=stop)


def has_branches(path: str, tree: str, branches: Iterable[str]) -> bool:
    import uproot  # when a file is read, not when the code location loads

    with uproot.open(path) as file:
        return tree in file and all(name in file[tree] for name in branches)


def read_label(path: str, key: str) -> str:
    """A string stored next to the tree (``data_tag``, ``data_format``)."""
    import uproot  # when a file is read, not when the code location loads

    with uproot.open(path) as file:
        if key not in file:
            raise ValueError(f"{path}: no {key!r} label; is this a demo skim or cDST?")
        return str(file[key])
