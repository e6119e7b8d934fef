"""``python -m b2cal_assets.caf.manifest_extract CALIBRATIONS_DIR OUTPUT``: the manifest, written where the
framework is set up.

``b2cal calibrations export`` runs this after the site's setup commands, so the scripts load with the
framework's own ``prompt``/``caf``/``basf2`` (b2cal's stand-ins only where they are missing). The
release is the framework's ``$BELLE2_RELEASE`` (set by its setup), or null. Exit status: 0 written,
2 the directory or the output is wrong (one line on stderr).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from b2cal_assets.caf.manifest import manifest_document
from b2cal_assets.caf.scripts import load_scripts
from b2cal_assets.caf.shim import framework_installed
from b2cal_assets.files import atomic_write_text

USAGE = "usage: python -m b2cal_assets.caf.manifest_extract CALIBRATIONS_DIR OUTPUT"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    folder, output = Path(args[0]), Path(args[1])
    try:
        scripts = load_scripts(folder)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    framework = "basf2" if framework_installed() else "b2cal shim"
    document = manifest_document(
        scripts, framework=framework, release=os.environ.get("BELLE2_RELEASE") or None
    )
    try:
        atomic_write_text(output, json.dumps(document, indent=1) + "\n")
    except OSError as exc:
        print(f"error: cannot write the manifest {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(
        f"{len(scripts.calibrations)} calibration(s), {len(scripts.errors)} script error(s), framework {framework}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
