"""The calibration dependency graph: a deterministic run order and who is up- or downstream of whom."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = ["CalibrationGraph", "GraphError", "find_cycles"]


class GraphError(ValueError):
    """The dependencies cannot be ordered: a cycle, or a dependency nobody defines."""

    def __init__(
        self,
        message: str,
        *,
        cycle: tuple[str, ...] | None = None,
        unknown: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        #: the cycle as a path that ends where it starts, e.g. ("a", "b", "a")
        self.cycle = cycle
        #: (who asked, the unknown dependency)
        self.unknown = unknown


def format_cycle(cycle: Iterable[str]) -> str:
    return " -> ".join(cycle)


def find_cycles(deps: Mapping[str, Iterable[str]]) -> list[tuple[str, ...]]:
    """One cycle per strongly connected component that has one, as a path ending where it starts.

    Dependencies on names that are not keys are ignored here. Deterministic: names are visited sorted.
    """
    graph = {name: sorted({d for d in ups if d in deps}) for name, ups in deps.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0

    # Iterative Tarjan, so deep chains do not hit the recursion limit.
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    components.append(sorted(component))

    cycles = []
    for component in sorted(components):
        members = set(component)
        start = component[0]
        path = [start]
        seen = {start}
        node = start
        while True:
            # Follow the smallest dependency inside the component until a node repeats.
            node = next(d for d in graph[node] if d in members)
            if node in seen:
                path = path[path.index(node) :]
                path.append(node)
                break
            path.append(node)
            seen.add(node)
        cycles.append(tuple(path))
    return sorted(cycles)


class CalibrationGraph:
    """``deps`` maps each calibration to the calibrations it depends on (its direct upstream)."""

    def __init__(self, deps: Mapping[str, Iterable[str]]) -> None:
        self._up: dict[str, tuple[str, ...]] = {}
        for name in deps:
            seen: dict[str, None] = {}
            for dep in deps[name]:
                if dep not in deps:
                    known = ", ".join(sorted(deps)) or "none"
                    raise GraphError(
                        f"{name!r} depends on {dep!r}, which is not a known calibration (known: {known})",
                        unknown=(name, dep),
                    )
                seen[dep] = None
            self._up[name] = tuple(sorted(seen))
        cycles = find_cycles(self._up)
        if cycles:
            text = "; ".join(format_cycle(c) for c in cycles)
            raise GraphError(f"dependency cycle: {text}", cycle=cycles[0])
        self._down: dict[str, tuple[str, ...]] = {name: () for name in self._up}
        for name, ups in self._up.items():
            for up in ups:
                self._down[up] = (*self._down[up], name)
        self._down = {name: tuple(sorted(down)) for name, down in self._down.items()}
        self._order = self.order()
        self._position = {name: i for i, name in enumerate(self._order)}

    def _check(self, name: str) -> None:
        if name not in self._up:
            known = ", ".join(sorted(self._up)) or "none"
            raise GraphError(f"no calibration named {name!r} (known: {known})")

    def order(self, key: Callable[[str], Any] | None = None) -> list[str]:
        """A topological order (dependencies first); ties broken by ``key`` (default: the name)."""
        sort_key = key or (lambda name: name)
        remaining = {name: len(ups) for name, ups in self._up.items()}
        ready = [(sort_key(name), name) for name, count in remaining.items() if count == 0]
        heapq.heapify(ready)
        result: list[str] = []
        while ready:
            _, name = heapq.heappop(ready)
            result.append(name)
            for down in self._down[name]:
                remaining[down] -= 1
                if remaining[down] == 0:
                    heapq.heappush(ready, (sort_key(down), down))
        return result

    def upstream(self, name: str) -> tuple[str, ...]:
        """The direct dependencies of ``name``, sorted."""
        self._check(name)
        return self._up[name]

    def downstream(self, name: str) -> tuple[str, ...]:
        """The calibrations that depend directly on ``name``, sorted."""
        self._check(name)
        return self._down[name]

    def _closure(self, name: str, step: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
        self._check(name)
        found: set[str] = set()
        todo = list(step[name])
        while todo:
            node = todo.pop()
            if node not in found:
                found.add(node)
                todo.extend(step[node])
        return tuple(sorted(found, key=self._position.__getitem__))

    def ancestors(self, name: str) -> tuple[str, ...]:
        """Everything ``name`` needs, directly or not, in run order."""
        return self._closure(name, self._up)

    def descendants(self, name: str) -> tuple[str, ...]:
        """Everything that needs ``name``, directly or not, in run order."""
        return self._closure(name, self._down)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._up

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._up)

    def __repr__(self) -> str:
        return f"CalibrationGraph({dict(self._up)!r})"
