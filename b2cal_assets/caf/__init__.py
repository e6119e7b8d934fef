"""Running one calibration the framework's way: collector subjobs, algorithm, iterations, outputdb.

May import ``domain`` and ``backends`` (jobs go through a backend); never ``db``, ``loop``, the web layer
or Dagster (checked by the import contracts in ``pyproject.toml``).
"""
