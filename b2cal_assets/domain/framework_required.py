"""Telling a script that needs the experiment's framework apart from a broken one.

Without basf2 installed, b2cal stands in for ``basf2`` and ``ROOT`` at module level (so settings can
be read), but a calibration whose collector is a basf2 module or whose algorithm is a C++ class
cannot run here. Such a use raises ``FrameworkRequired`` naming what was needed; an import of
another framework package (``rawdata``, ``reconstruction``, ...) is recognised by ``framework_package``.
"""

from __future__ import annotations

__all__ = ["FRAMEWORK_PACKAGES", "FrameworkRequired", "framework_package"]

#: Top-level Python packages that come with the framework (basf2 and its ROOT), which b2cal cannot
#: provide; a script importing one at module level loads only where the framework is set up.
FRAMEWORK_PACKAGES = frozenset(
    {
        "basf2", "ROOT", "pybasf2", "b2bii", "b2biiConversion", "b2test_utils", "beamparameters",
        "conditions_db", "generators", "geometry", "hlt", "L1trigger", "mdst", "millepede_calibration",
        "modularAnalysis", "rawdata", "reconstruction", "simulation", "skim", "softwaretrigger",
        "stdCharged", "stdKlongs", "stdPhotons", "stdPi0s", "stdV0s", "tracking", "trg", "variables",
        "vertex", "alignment", "svd", "pxd", "cdc", "ecl", "top", "arich", "klm", "KLMCalibrationUtils",
        "ecl_calibration", "tracking_tools", "validation_tools", "pdg", "b2math", "Belle2",
    }
)


class FrameworkRequired(RuntimeError):
    """Something only the experiment's framework (basf2) provides was used where it is not installed."""

    def __init__(self, what: str, *, calibration: str | None = None) -> None:
        self.what = what
        self.calibration = calibration
        super().__init__(str(self))

    def __str__(self) -> str:
        who = f"calibration {self.calibration!r}: " if self.calibration else ""
        return (
            f"{who}needs the framework (basf2): {self.what}; it is not installed here. Run this script where "
            "basf2 is set up (the framework runner, or b2caf-prompt-run inside the framework's environment)"
        )

    def for_calibration(self, calibration: str) -> FrameworkRequired:
        """The same error, naming the calibration."""
        return FrameworkRequired(self.what, calibration=calibration)


def framework_package(module_name: str | None) -> str | None:
    """The framework package a (missing) module belongs to, or None."""
    if not module_name:
        return None
    top = module_name.split(".", 1)[0]
    return top if top in FRAMEWORK_PACKAGES else None
