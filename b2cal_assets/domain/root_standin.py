"""A stand-in for PyROOT's ``ROOT`` module, used only where ROOT with the framework is not installed.

NOT ROOT. Prompt scripts write ``from ROOT import Belle2`` or ``import ROOT`` at module level and build
C++ algorithms inside ``get_calibrations``. Here every ``ROOT.<name>`` (and ``ROOT.<pkg>`` submodule)
is a placeholder: reading names works, so the script loads; calling one raises ``FrameworkRequired``
naming the C++ name (``ROOT.Belle2.CDC.T0CalibrationAlgorithm``). A few calls that only set up
plotting (``ROOT.gROOT.SetBatch``, ``ROOT.gStyle...``) do nothing.
"""

from __future__ import annotations

import importlib.machinery
from types import ModuleType
from typing import Any

from b2cal_assets.domain.framework_required import FrameworkRequired

__all__ = ["FrameworkName", "RootStandIn", "root_module"]

_HARMLESS = ("ROOT.gROOT.SetBatch", "ROOT.gROOT.SetStyle", "ROOT.gROOT.ProcessLine", "ROOT.gStyle.")


class FrameworkName:
    """A name inside ROOT that cannot be used without the framework (reading attributes is fine)."""

    def __init__(self, path: str) -> None:
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> FrameworkName:
        if name.startswith("__"):
            raise AttributeError(name)
        return FrameworkName(f"{self._path}.{name}")

    def __setattr__(self, name: str, value: Any) -> None:  # gStyle.foo = ...: recorded nowhere
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._path.startswith(_HARMLESS):
            return None
        raise FrameworkRequired(f"{self._path} is a C++ class or function of the framework")

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        raise FrameworkRequired(f"a Python class derived from {self._path}")

    def __repr__(self) -> str:
        return f"<stand-in for {self._path} (needs the framework)>"


class RootStandIn(ModuleType):
    """The ``ROOT`` module (or one of its namespaces imported as a module): every name a placeholder."""

    __b2cal_standin__ = True

    def __getattr__(self, name: str) -> FrameworkName:
        if name.startswith("__"):
            raise AttributeError(name)
        return FrameworkName(f"{self.__name__}.{name}")


def root_module(name: str = "ROOT") -> RootStandIn:
    """A fresh stand-in module for ``ROOT`` or ``ROOT.<namespace>`` (``from ROOT.Belle2 import X``)."""
    module = RootStandIn(name, __doc__)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module.__path__ = []
    return module
