"""The framework's ``caf.backends`` names, for scripts that import them.

Scripts and their collections name a backend or a subjob splitter (``MaxFilesSplitter``,
``MaxSubjobsSplitter``) and pass backend arguments. Here the splitters split file lists exactly as
b2cal's runner does (``caf.splitting``), and the backend classes hold their settings and the
framework's default job limits; b2cal's own batch backends (``b2cal_assets.backends``) run the jobs,
so submitting a framework ``Job`` directly raises ``FrameworkRequired``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from b2cal_assets.caf.splitting import split_files
from b2cal_assets.domain.framework_required import FrameworkRequired

__all__ = [
    "LSF",
    "PBS",
    "ArgumentsSplitter",
    "Backend",
    "Batch",
    "HTCondor",
    "Job",
    "Local",
    "MaxFilesSplitter",
    "MaxSubjobsSplitter",
    "SubjobSplitter",
]


class SubjobSplitter:
    """Cuts a job's input files into subjobs."""

    def __init__(self, *, arguments_generator: Any = None) -> None:
        self.arguments_generator = arguments_generator

    def split(self, files: Sequence[str]) -> list[list[str]]:
        return [list(files)] if files else []


class MaxFilesSplitter(SubjobSplitter):
    """At most ``max_files_per_subjob`` files per subjob."""

    def __init__(self, *, arguments_generator: Any = None, max_files_per_subjob: int = 1) -> None:
        super().__init__(arguments_generator=arguments_generator)
        self.max_files_per_subjob = max_files_per_subjob

    def split(self, files: Sequence[str]) -> list[list[str]]:
        return split_files(list(files), max_files_per_collector_job=self.max_files_per_subjob)


class MaxSubjobsSplitter(SubjobSplitter):
    """The files spread evenly over at most ``max_subjobs`` subjobs."""

    def __init__(self, *, arguments_generator: Any = None, max_subjobs: int = 1000) -> None:
        super().__init__(arguments_generator=arguments_generator)
        self.max_subjobs = max_subjobs

    def split(self, files: Sequence[str]) -> list[list[str]]:
        return split_files(list(files), max_collector_jobs=self.max_subjobs)


class ArgumentsSplitter(SubjobSplitter):
    """One subjob per generated argument tuple (every subjob gets all files)."""

    def __init__(self, *, arguments_generator: Any = None, max_subjobs: int | None = None) -> None:
        super().__init__(arguments_generator=arguments_generator)
        self.max_subjobs = max_subjobs


class Job:
    """A framework job description (name, command, input files, backend arguments)."""

    def __init__(self, name: str, job_dict: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.splitter: SubjobSplitter | None = None
        self.working_dir = Path()
        self.output_dir = Path()
        self.cmd: list[str] = []
        self.args: list[str] = []
        self.input_files: list[str] = []
        self.input_sandbox_files: list[str] = []
        self.setup_cmds: list[str] = []
        self.backend_args: dict[str, Any] = {}
        self.output_patterns: list[str] = []
        self.subjobs: dict[int, Any] = {}
        for key, value in (job_dict or {}).items():
            setattr(self, key, value)

    def append_current_basf2_setup_cmds(self) -> NoReturn:
        raise FrameworkRequired(f"Job {self.name!r}: append_current_basf2_setup_cmds() copies the basf2 setup")

    def __repr__(self) -> str:
        return f"Job({self.name!r})"


class Backend:
    """A place to run jobs, with its default backend arguments."""

    default_backend_args: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, backend_args: Mapping[str, Any] | None = None) -> None:
        self.backend_args = {**self.default_backend_args, **(backend_args or {})}

    def submit(self, job: Job, *args: Any, **kwargs: Any) -> NoReturn:
        raise FrameworkRequired(
            f"{type(self).__name__}.submit({job!r}) is the framework's job submission (b2cal submits "
            "through its own backends)"
        )


class Local(Backend):
    """A local process pool (the framework's default: 1 process)."""

    def __init__(self, *, backend_args: Mapping[str, Any] | None = None, max_processes: int = 1) -> None:
        super().__init__(backend_args=backend_args)
        if max_processes < 1:
            raise ValueError(f"max_processes must be at least 1, got {max_processes}")
        self.max_processes = max_processes


class Batch(Backend):
    """A batch system: a global job limit and submission in chunks."""

    default_global_job_limit: ClassVar[int] = 1000
    default_sleep_between_submission_checks: ClassVar[int] = 30
    submission_cmds: ClassVar[list[str]] = []

    def __init__(self, *, backend_args: Mapping[str, Any] | None = None) -> None:
        super().__init__(backend_args=backend_args)
        self.global_job_limit = self.default_global_job_limit
        self.sleep_between_submission_checks = self.default_sleep_between_submission_checks


class PBS(Batch):
    default_global_job_limit: ClassVar[int] = 5000
    default_backend_args: ClassVar[dict[str, Any]] = {"queue": "short"}
    submission_cmds: ClassVar[list[str]] = ["qsub"]


class LSF(Batch):
    default_global_job_limit: ClassVar[int] = 15000
    default_backend_args: ClassVar[dict[str, Any]] = {"queue": "s"}
    submission_cmds: ClassVar[list[str]] = ["bsub", "-env", '"none"', "<"]


class HTCondor(Batch):
    default_global_job_limit: ClassVar[int] = 10000
    default_backend_args: ClassVar[dict[str, Any]] = {
        "universe": "vanilla",
        "getenv": "false",
        "request_memory": "4 GB",
        "path_prefix": "",
        "extra_lines": [],
    }
    submission_cmds: ClassVar[list[str]] = ["condor_submit", "-terse"]
