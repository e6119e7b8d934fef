"""What Slurm, LSF and HTCondor share: building from a site's settings, array submission and cancel.

``ArrayBackend`` owns the lifecycle the three schedulers have in common (after ``b2luigi``'s batch
processes): jobs with equal ``backend_args`` are grouped, the site's options are merged with the job's
and checked, each job's wrapper is written, and each group goes to the scheduler in chunks (one
manifest line per job) through one hook, ``submit_array``; ``cancel`` is one command for all handles.
A backend adds its script renderer, its native-state parser and ``poll``.
"""

from __future__ import annotations

import abc
import dataclasses
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

from b2cal_assets.backends.base import BackendError, BatchBackend, JobHandle, JobSpec
from b2cal_assets.backends.commands import (
    CommandResult,
    CommandRunner,
    JobFiles,
    describe_failure,
    group_by_backend_args,
    merged_options,
    new_submission_dir,
    write_manifest,
)
from b2cal_assets.backends.options import BatchOptions
from b2cal_assets.backends.wrapper import WRAPPER_FILE, render_wrapper

__all__ = ["SUBMIT_DIR_HELP", "ArrayBackend", "SettingInfo", "setting"]

OptionsT = TypeVar("OptionsT", bound=BatchOptions)

# dataclass fields of a backend that are not site settings
_NOT_SETTINGS = frozenset({"options", "runner", "files", "name"})
_SETTING = "b2cal_setting"
SUBMIT_DIR_HELP = "Manifests, scripts and scheduler logs (empty: next to the jobs)."


@dataclasses.dataclass(frozen=True)
class SettingInfo:
    """A backend's site setting besides its options, declared once on the backend (``setting``); the
    Dagster resource's field of the same name is made from it (``defs/batch_resources.py``)."""

    hint: object  # the field's type: ``Path | None``, ``int`` or ``bool``
    default: Any
    help: str

    @property
    def is_path(self) -> bool:
        """A path of the machine the backend runs on (empty means none), never a remote host's."""
        return self.hint == Path | None


def setting(default: Any = None, *, help: str) -> Any:
    """A site setting of a backend dataclass (``submit_dir``, ``max_array_size``, ...), with its help."""
    return dataclasses.field(default=default, metadata={_SETTING: help})


class ArrayBackend(BatchBackend, Generic[OptionsT]):
    """A scheduler backend: subclasses are dataclasses with ``options``, ``runner`` and ``submit_dir``.

    Every other dataclass field (``max_array_size``, ``jobcomp_file``, ...) is a site setting that
    ``from_config`` accepts besides the options.
    """

    label: ClassVar[str] = "batch"  # the scheduler's name in messages ("Slurm")
    options: OptionsT
    runner: CommandRunner
    files: JobFiles  # where the wrappers, manifests and scripts are written (this machine by default)
    submit_dir: Path | None

    # -- building from a site's settings ------------------------------------------------------------

    @classmethod
    def options_class(cls) -> type[BatchOptions]:
        option_type = typing.get_type_hints(cls)["options"]
        assert isinstance(option_type, type) and issubclass(option_type, BatchOptions)
        return option_type

    @classmethod
    def site_settings(cls) -> dict[str, SettingInfo]:
        """The settings a site gives besides the options (submit directory, array size, ...), by name."""
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # subclasses are dataclasses
        hints = typing.get_type_hints(cls)
        return {
            f.name: SettingInfo(hints[f.name], f.default, str(f.metadata.get(_SETTING, "")))
            for f in fields
            if f.name not in _NOT_SETTINGS
        }

    @classmethod
    def from_config(
        cls, config: Mapping[str, object], runner: CommandRunner | None = None, files: JobFiles | None = None
    ) -> Self:
        """Build from a site's ``backend_config``; unknown keys are an error naming the known ones."""
        settings = cls.site_settings()
        options_class = cls.options_class()
        known = set(options_class.names()) | set(settings)
        unknown = sorted(set(config) - known)
        if unknown:
            raise BackendError(
                f"unknown {cls.label} setting(s) {', '.join(unknown)}; "
                f"known settings are {', '.join(sorted(known))}"
            )
        kwargs: dict[str, Any] = {
            "options": options_class.from_mapping({k: v for k, v in config.items() if k not in settings})
        }
        for key in sorted(set(settings) & set(config)):
            kwargs[key] = _setting(key, settings[key].hint, config[key])
        if runner is not None:
            kwargs["runner"] = runner
        if files is not None:
            kwargs["files"] = files
        return cls(**kwargs)

    # -- submit -------------------------------------------------------------------------------------

    def submit(self, jobs: Sequence[JobSpec]) -> list[JobHandle]:
        handles: list[JobHandle | None] = [None] * len(jobs)
        site = self.options.as_mapping()
        for group in group_by_backend_args(jobs):
            specs = [jobs[i] for i in group]
            merged = merged_options(site, specs[0], self.options.names(), self.label)
            options = type(self.options).from_mapping(merged)
            for spec in specs:
                self.check_job(spec)
                self.files.write(Path(spec.workdir).absolute() / WRAPPER_FILE, render_wrapper(spec), 0o755)
            ids = self.submit_group(specs, options)
            for i, spec, job_id in zip(group, specs, ids, strict=True):
                handles[i] = JobHandle(self.name, job_id, spec.name, Path(spec.workdir))
        return [h for h in handles if h is not None]

    def check_job(self, spec: JobSpec) -> None:
        """Refuse a job the scheduler cannot take, before anything is written; the default takes all."""

    def max_per_submission(self) -> int | None:
        """At most this many jobs per array (the scheduler's array size limit); ``None``: no limit."""
        return None

    def submit_group(self, specs: Sequence[JobSpec], options: OptionsT) -> list[str]:
        """Submit jobs sharing ``options`` as arrays of at most ``max_per_submission``; their job ids."""
        ids: list[str] = []
        size = max(1, self.max_per_submission() or len(specs))
        for start in range(0, len(specs), size):
            chunk = specs[start : start + size]
            sub = new_submission_dir(chunk, self.submit_dir, self.name, self.files)
            manifest = write_manifest(sub / "manifest.txt", [Path(s.workdir) for s in chunk], self.files)
            ids.extend(self.submit_array(chunk, options, manifest, sub))
        return ids

    @abc.abstractmethod
    def submit_array(
        self, specs: Sequence[JobSpec], options: OptionsT, manifest: Path, submission_dir: Path
    ) -> list[str]:
        """Submit one array (line N of ``manifest`` is ``specs[N]``'s workdir); one job id per spec."""

    # -- cancel -------------------------------------------------------------------------------------

    def cancel(self, handles: Sequence[JobHandle]) -> None:
        if not handles:
            return
        result = self.runner(self.cancel_argv(h.job_id for h in handles))
        if result.returncode != 0 and not self.already_gone(result):
            raise BackendError(describe_failure(result))

    @abc.abstractmethod
    def cancel_argv(self, job_ids: Iterable[str]) -> list[str]:
        """The one command that cancels all of ``job_ids``."""

    @abc.abstractmethod
    def already_gone(self, result: CommandResult) -> bool:
        """A failed cancel that only complains about jobs that already ended: not a failure."""


def _setting(key: str, hint: object, value: object) -> object:
    """A site setting's value as its field's type: paths (empty means none), whole numbers, flags."""
    if hint == Path | None:
        return Path(str(value)) if value else None
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise BackendError(f"setting {key} must be a whole number, not {value!r}")
        try:
            return int(value)
        except ValueError:
            raise BackendError(f"setting {key} must be a whole number, not {value!r}") from None
    if hint is bool:
        return bool(value)
    return value
