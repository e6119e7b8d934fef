"""b2cal on Dagster: an automated detector-calibration loop.

Layers: ``domain`` (pure calibration concepts), ``caf`` (running one calibration), ``backends``
(batch systems), ``db`` (the calibration database), ``loop`` (what happens next in a processing),
``defs`` (the Dagster adapter), ``web`` and ``cli`` (the ways in for people); beside them, for every
layer, ``settings`` (the ``B2CAL_*`` variables), ``home`` (the paths) and ``files`` (atomic writes).
The import contracts in ``pyproject.toml`` check who may import whom.
"""

__version__ = "0.1.0"
