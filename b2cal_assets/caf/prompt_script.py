"""Run a prompt script as a program, the way ``basf2 <script> args...`` runs it in the framework.

``python -m b2cal_assets.caf.prompt_script CALIBRATIONS_DIR SCRIPT [ARG ...]`` executes SCRIPT as
``__main__`` with ``sys.argv = [SCRIPT, ARG, ...]`` and the framework's import names (``prompt``,
``caf``, the directory's scripts, and the basf2/ROOT stand-ins where the framework is missing)
importable. Validation scripts are run like this: their ``__main__`` calls
``run_validation(*sys.argv[1:])``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from b2cal_assets.caf.shim import ScriptNamespace
from b2cal_assets.domain.framework_required import FrameworkRequired

USAGE = "usage: python -m b2cal_assets.caf.prompt_script CALIBRATIONS_DIR SCRIPT [ARG ...]"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    calibrations_dir, script = Path(args[0]), Path(args[1])
    for what, path, check in (("calibrations directory", calibrations_dir, Path.is_dir), ("script", script, Path.is_file)):
        if not check(path):
            print(f"error: the {what} {path} does not exist", file=sys.stderr)
            return 2
    sys.argv = [str(script), *args[2:]]
    with ScriptNamespace(calibrations_dir).activate():
        try:
            runpy.run_path(str(script), run_name="__main__")
        except FrameworkRequired as exc:
            print(f"error: {script.name}: {exc}", file=sys.stderr)
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
