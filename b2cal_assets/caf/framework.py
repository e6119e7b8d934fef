"""What a calibration script's ``get_calibrations`` returns (the framework's ``caf.framework``).

A collector runs over one input file in a subjob and returns summable arrays (histograms, counts,
sums); the runner adds them up per run. The algorithm turns the collected data of a set of runs into
payload constants.

``Calibration`` also takes the framework's own form (``Calibration(name, collector=<basf2 module>,
algorithms=[<C++ algorithm>], input_files=[...])``, ``add_collection``, ``strategies``,
``depends_on``), so real scripts build their calibrations unchanged; b2cal's runner runs the ones
whose collector and algorithm are Python callables and says clearly (``FrameworkRequired``) when a
calibration needs the framework.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from b2cal_assets.caf.backend_names import MaxFilesSplitter, MaxSubjobsSplitter, SubjobSplitter
from b2cal_assets.caf.databases import CentralDatabase, LocalDatabase
from b2cal_assets.caf.strategies import SingleIOV, Strategy, as_strategy
from b2cal_assets.domain.basf2_standin import register_module
from b2cal_assets.domain.framework_required import FrameworkRequired
from b2cal_assets.domain.iov import ExpRun, IoV

__all__ = [
    "CAF",
    "Algorithm",
    "AlgorithmContext",
    "AlgorithmResult",
    "AlgorithmStatus",
    "Arrays",
    "Calibration",
    "CentralDatabase",
    "Collection",
    "CollectorContext",
    "Conditions",
    "LocalDatabase",
    "Strategy",
]

Arrays = dict[str, np.ndarray]


class AlgorithmStatus(StrEnum):
    OK = "ok"
    NOT_ENOUGH_DATA = "not_enough_data"
    ITERATE = "iterate"
    FAILURE = "failure"


@dataclass(frozen=True)
class Conditions:
    """Payload constants visible to a job: this calibration's previous iteration, then the database chain."""

    payloads: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)

    def get(self, payload: str) -> Mapping[str, np.ndarray]:
        try:
            return self.payloads[payload]
        except KeyError:
            known = ", ".join(sorted(self.payloads)) or "none"
            raise KeyError(f"no payload {payload!r} in the database chain (known: {known})") from None

    def __contains__(self, payload: object) -> bool:
        return payload in self.payloads


@dataclass(frozen=True)
class CollectorContext:
    iteration: int
    exp_run: ExpRun
    conditions: Conditions
    expert_config: Mapping[str, Any]
    requested_iov: IoV


@dataclass(frozen=True)
class AlgorithmContext:
    iteration: int
    runs: tuple[ExpRun, ...]
    conditions: Conditions
    expert_config: Mapping[str, Any]
    requested_iov: IoV


@dataclass
class AlgorithmResult:
    status: AlgorithmStatus
    payloads: dict[str, dict[str, np.ndarray | float]] = field(default_factory=dict)
    message: str = ""


Collector = Callable[[str, CollectorContext], Arrays]
AlgorithmFunction = Callable[[Arrays, AlgorithmContext], AlgorithmResult]


def _framework_module(collector: object) -> object:
    """A collector given by name becomes a (stand-in) basf2 module, as ``register_module`` would make it."""
    if isinstance(collector, str):
        return register_module(collector)
    return collector


def _expand_files(value: object) -> list[str]:
    """Input files as the framework takes them: a path, a glob pattern or a URI, or a list of those."""
    if value is None:
        return []
    patterns = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    files: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(f"Input files must be a list or string, got {type(pattern).__name__} {pattern!r}")
        if "://" not in pattern and glob.has_magic(pattern):
            files.extend(sorted(glob.glob(pattern)))
        else:
            files.append(pattern)
    return files


class Collection:
    """One collector over its input files (the framework's ``caf.framework.Collection``)."""

    default_max_collector_jobs = 1000
    job_config = "collector_job.json"

    def __init__(
        self,
        collector: Any = None,
        input_files: str | Iterable[str] | None = None,
        pre_collector_path: Any = None,
        database_chain: Iterable[CentralDatabase | LocalDatabase] | None = None,
        output_patterns: Iterable[str] | None = None,
        max_files_per_collector_job: int | None = None,
        max_collector_jobs: int | None = None,
        backend_args: Mapping[str, Any] | None = None,
    ) -> None:
        if max_files_per_collector_job and max_collector_jobs:
            raise ValueError("Cannot set both 'max_files_per_collector_job' and 'max_collector_jobs' of a collection!")
        self.collector = _framework_module(collector)
        self.input_files = _expand_files(input_files)
        self.files_to_iovs: dict[str, IoV] = {}
        self.pre_collector_path = pre_collector_path
        self.output_patterns = list(output_patterns) if output_patterns else ["CollectorOutput.root"]
        self.splitter: SubjobSplitter | None
        if max_files_per_collector_job:
            self.splitter = MaxFilesSplitter(max_files_per_subjob=max_files_per_collector_job)
        else:
            self.splitter = MaxSubjobsSplitter(max_subjobs=max_collector_jobs or self.default_max_collector_jobs)
        self.backend_args: dict[str, Any] = dict(backend_args or {})
        self.database_chain: list[CentralDatabase | LocalDatabase] = list(database_chain or [])

    @property
    def max_collector_jobs(self) -> int | None:
        return getattr(self.splitter, "max_subjobs", None)

    @max_collector_jobs.setter
    def max_collector_jobs(self, value: int | None) -> None:
        self.splitter = None if value is None else MaxSubjobsSplitter(max_subjobs=value)

    @property
    def max_files_per_collector_job(self) -> int | None:
        return getattr(self.splitter, "max_files_per_subjob", None)

    @max_files_per_collector_job.setter
    def max_files_per_collector_job(self, value: int | None) -> None:
        self.splitter = None if value is None else MaxFilesSplitter(max_files_per_subjob=value)

    def reset_database(self) -> None:
        self.database_chain = []

    def use_central_database(self, global_tag: str) -> None:
        self.database_chain.append(CentralDatabase(global_tag))

    def use_local_database(self, filename: str, directory: str = "") -> None:
        self.database_chain.append(LocalDatabase(filename, directory))

    def is_valid(self) -> bool:
        return bool(self.collector and self.input_files)


class Algorithm:
    """One algorithm of a calibration with its strategy and parameters (the framework's wrapper)."""

    def __init__(self, algorithm: Any, data_input: Callable[..., Any] | None = None,
                 pre_algorithm: Callable[..., Any] | None = None) -> None:
        self.algorithm = algorithm
        self.name = getattr(algorithm, "__name__", type(algorithm).__name__)
        self.data_input = data_input
        self.pre_algorithm = pre_algorithm
        self.strategy: type = SingleIOV
        self.params: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Algorithm({self.name})"


class Calibration:
    """A collector + algorithm over input files, in b2cal's form or the framework's.

    b2cal's form: ``Calibration(name=..., collector=<callable>, algorithm=<callable>,
    input_files={path: ExpRun}, payload_names=(...))``. Set at most one of
    ``max_files_per_collector_job`` and ``max_collector_jobs`` (neither: one file per subjob).
    The framework's form (positional order as there): ``Calibration(name, collector, algorithms,
    input_files, pre_collector_path, database_chain, output_patterns, max_files_per_collector_job,
    max_collector_jobs, backend_args)``, or ``Calibration(name)`` + ``add_collection``.
    """

    default_collection_name = "default"
    alg_output_dir = "algorithm_output"
    checkpoint_states = ("init", "collector_completed", "completed")
    end_state = "completed"
    fail_state = "failed"
    default_max_iterations = 5

    def __init__(
        self,
        name: str,
        collector: Any = None,
        algorithms: Any = None,
        input_files: Mapping[str, ExpRun] | Iterable[str] | str | None = None,
        pre_collector_path: Any = None,
        database_chain: Iterable[CentralDatabase | LocalDatabase] | None = None,
        output_patterns: Iterable[str] | None = None,
        max_files_per_collector_job: int | None = None,
        max_collector_jobs: int | None = None,
        backend_args: Mapping[str, Any] | None = None,
        *,
        algorithm: Algorithm | AlgorithmFunction | None = None,
        payload_names: Iterable[str] = (),
        max_iterations: int | None = None,
        strategy: object = Strategy.SINGLE_IOV,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a calibration's name is a non-empty string, got {name!r}")
        self.name = name
        if max_files_per_collector_job is not None and max_collector_jobs is not None:
            raise ValueError(
                f"calibration {self.name}: set max_files_per_collector_job or max_collector_jobs, not both"
            )
        self.max_files_per_collector_job = max_files_per_collector_job
        self.max_collector_jobs = max_collector_jobs
        self.backend_args: dict[str, Any] = dict(backend_args or {})
        self.collections: dict[str, Collection] = {}
        files_list = list(input_files) if isinstance(input_files, Mapping) else input_files
        self.add_collection(
            self.default_collection_name,
            Collection(collector, files_list, pre_collector_path, database_chain, output_patterns,
                       max_files_per_collector_job, max_collector_jobs, backend_args),
        )
        self.input_files: Any = dict(input_files) if isinstance(input_files, Mapping) else _expand_files(input_files)
        self.files_to_iovs: dict[str, IoV] = {}
        if algorithm is not None and algorithms is not None:
            raise ValueError(f"calibration {self.name}: give algorithm= (b2cal) or algorithms= (framework), not both")
        chosen = algorithm if algorithm is not None else algorithms
        self.algorithms: list[Algorithm] = [
            a if isinstance(a, Algorithm) else Algorithm(a)
            for a in (chosen if isinstance(chosen, list | tuple) else [chosen] if chosen is not None else [])
        ]
        self.payload_names = tuple(payload_names)
        if max_iterations is not None and max_iterations < 0:
            raise ValueError(f"calibration {self.name}: max_iterations must not be negative")
        self._max_iterations = max_iterations
        self.strategy = as_strategy(strategy)
        self.dependencies: list[Calibration] = []
        self.future_dependencies: list[Calibration] = []
        self.database_chain: list[CentralDatabase | LocalDatabase] = list(database_chain or [])
        self.ignored_runs: list[ExpRun] | None = None
        self.save_payloads = True
        self.results: dict[int, Any] = {}
        self.backend: Any = None
        self.heartbeat = 3
        self.collector_full_update_interval = 30

    # -- the framework's attributes -----------------------------------------------------------------

    @property
    def collector(self) -> Any:
        return self.collections[self.default_collection_name].collector

    @collector.setter
    def collector(self, collector: Any) -> None:
        self.collections[self.default_collection_name].collector = _framework_module(collector)

    @property
    def pre_collector_path(self) -> Any:
        return self.collections[self.default_collection_name].pre_collector_path

    @pre_collector_path.setter
    def pre_collector_path(self, path: Any) -> None:
        self.collections[self.default_collection_name].pre_collector_path = path

    @property
    def algorithm(self) -> Callable[..., Any]:
        """b2cal's algorithm: the one callable algorithm of this calibration."""
        if len(self.algorithms) != 1:
            raise ValueError(f"calibration {self.name} has {len(self.algorithms)} algorithms, b2cal runs exactly one")
        return self.algorithms[0].algorithm  # type: ignore[no-any-return]

    @property
    def max_iterations(self) -> int:
        """At least one iteration (the framework's 0, "no further iterations", is one here)."""
        value = self.default_max_iterations if self._max_iterations is None else self._max_iterations
        return max(1, value)

    @max_iterations.setter
    def max_iterations(self, value: int | None) -> None:
        if value is not None and value < 0:
            raise ValueError(f"calibration {self.name}: max_iterations must not be negative")
        self._max_iterations = value

    @property
    def strategies(self) -> list[type]:
        return [alg.strategy for alg in self.algorithms]

    @strategies.setter
    def strategies(self, value: object) -> None:
        kinds = list(value) if isinstance(value, list | tuple) else [value] * max(1, len(self.algorithms))
        self.strategy = as_strategy(kinds)
        for alg, kind in zip(self.algorithms, kinds, strict=False):
            alg.strategy = kind  # type: ignore[assignment]

    @property
    def pre_algorithms(self) -> list[Any]:
        return [alg.pre_algorithm for alg in self.algorithms]

    @pre_algorithms.setter
    def pre_algorithms(self, func: Any) -> None:
        funcs = list(func) if isinstance(func, list | tuple) else [func] * len(self.algorithms)
        if len(funcs) != len(self.algorithms):
            raise ValueError(f"calibration {self.name}: {len(funcs)} pre_algorithms for {len(self.algorithms)} algorithms")
        for alg, f in zip(self.algorithms, funcs, strict=True):
            alg.pre_algorithm = f

    def add_collection(self, name: str, collection: Collection) -> None:
        """Add a named ``Collection``; a repeated name is refused, as in the framework."""
        if not isinstance(collection, Collection):
            raise TypeError(f"calibration {self.name}: add_collection({name!r}, ...) needs a Collection")
        if name in self.collections:
            raise ValueError(f"calibration {self.name}: a Collection named {name!r} already exists")
        self.collections[name] = collection

    def depends_on(self, calibration: Calibration) -> None:
        """This calibration runs after ``calibration`` and sees its payloads."""
        if calibration.name == self.name:
            raise ValueError(f"calibration {self.name} cannot depend on itself")
        if calibration not in self.dependencies:
            self.dependencies.append(calibration)
        if self not in calibration.future_dependencies:
            calibration.future_dependencies.append(self)

    def reset_database(self, apply_to_default_collection: bool = True) -> None:
        self.database_chain = []
        if apply_to_default_collection:
            self.collections[self.default_collection_name].reset_database()

    def use_central_database(self, global_tag: str, apply_to_default_collection: bool = True) -> None:
        self.database_chain.append(CentralDatabase(global_tag))
        if apply_to_default_collection:
            self.collections[self.default_collection_name].use_central_database(global_tag)

    def use_local_database(self, filename: str, directory: str = "", apply_to_default_collection: bool = True) -> None:
        self.database_chain.append(LocalDatabase(filename, directory))
        if apply_to_default_collection:
            self.collections[self.default_collection_name].use_local_database(filename, directory)

    def is_valid(self) -> bool:
        return bool(self.algorithms) and any(c.is_valid() for c in self.collections.values())

    # -- what b2cal's runner can run ----------------------------------------------------------------

    def check_runnable(self) -> None:
        """Raise ``FrameworkRequired`` or ``ValueError`` saying why b2cal's runner cannot run this calibration."""
        used = [name for name, c in self.collections.items() if c.collector or c.input_files]
        if len(used) > 1:
            raise ValueError(
                f"calibration {self.name} has {len(used)} collections ({', '.join(used)}); b2cal's runner runs one "
                "collector per calibration"
            )
        collector = self.collector
        if not callable(collector):
            what = getattr(collector, "name", lambda: repr(collector))
            raise FrameworkRequired(f"its collector is the framework module {what()!r}", calibration=self.name)
        if not self.algorithms:
            raise ValueError(f"calibration {self.name} has no algorithm")
        if len(self.algorithms) > 1:
            raise ValueError(f"calibration {self.name} has {len(self.algorithms)} algorithms, b2cal runs exactly one")
        if not callable(self.algorithms[0].algorithm) or isinstance(self.algorithms[0].algorithm, type):
            raise FrameworkRequired(
                f"its algorithm {self.algorithms[0].algorithm!r} is a framework (C++) algorithm", calibration=self.name
            )
        if not isinstance(self.input_files, Mapping):
            raise ValueError(
                f"calibration {self.name}: input_files must map each file to its run ({{path: ExpRun}}) for b2cal's runner"
            )

    def __repr__(self) -> str:
        return f"Calibration({self.name!r})"


class CAF:
    """The framework's container of calibrations; b2cal runs them itself (``b2caf-prompt-run``, the loop)."""

    def __init__(self, calibration_defaults: Mapping[str, Any] | None = None) -> None:
        self.calibrations: dict[str, Calibration] = {}
        self.calibration_defaults = {"max_iterations": Calibration.default_max_iterations, **(calibration_defaults or {})}
        self.output_dir = "calibration_results"
        self.backend: Any = None
        self.heartbeat = 5

    def add_calibration(self, calibration: Calibration) -> None:
        if calibration.name in self.calibrations:
            raise ValueError(f"a calibration named {calibration.name!r} is already in this CAF")
        self.calibrations[calibration.name] = calibration

    def run(self, iov: IoV | None = None) -> None:
        raise FrameworkRequired(
            "CAF.run() is the framework's own runner; in b2cal, get_calibrations returns the calibrations and "
            "b2caf-prompt-run (or the loop) runs them"
        )
