"""Running one calibration the framework's way: collector subjobs, algorithm, iterations, outputdb.

Also where the experts' scripts are loaded (``scripts``), through the import ``shim`` that hands them the
framework's ``prompt.*`` and ``caf.*`` names.

May import ``domain`` and ``backends`` (jobs go through a backend); never ``db``, ``loop``, the web layer
or Dagster (checked by the import contracts in ``pyproject.toml``).
"""
