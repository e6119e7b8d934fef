"""Writing calibration and validation scripts into a test directory, as an expert would."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path


def write(folder: Path, relative: str, source: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def calibration(
    name: str,
    *,
    formats: Iterable[str] = ("raw",),
    data_names: Iterable[str] = ("hlt_mumu",),
    depends_on: Iterable[tuple[str, str]] = (),
    expert: str = "alice",
    expert_config: dict | None = None,
    stage: str | None = None,
    subsystem: str | None = None,
) -> str:
    """Source of a script; ``depends_on`` lists (module, alias) of other scripts whose settings it needs."""
    imports = "".join(
        f"from prompt.calibrations.{module} import settings as {alias}\n" for module, alias in depends_on
    )
    deps = ", ".join(alias for _, alias in depends_on)
    stage_line = f"stage = {stage!r}\n" if stage else ""
    return (
        f'"""Calibration {name}."""\n'
        "from prompt import CalibrationSettings, INPUT_DATA_FILTERS\n"
        f"{imports}{stage_line}"
        f"settings = CalibrationSettings(name={name!r}, expert_username={expert!r}, description=__doc__,\n"
        + (f"    subsystem={subsystem!r},\n" if subsystem else "")
        + f"    input_data_formats={list(formats)!r}, input_data_names={list(data_names)!r},\n"
        f"    depends_on=[{deps}], expert_config={expert_config or {}!r})\n"
        "\n"
        "def get_calibrations(input_data, **kwargs):\n"
        "    return []\n"
    )
