"""The calibration database: SQLAlchemy 2 models and functions that take a ``Session``.

``models`` (the tables; changed only through a new Alembic migration in ``migrations/``), ``engine``
(URLs, engines, ``session_scope``), ``migrate`` (Alembic from Python), ``backup`` (dumps and restores with
each engine's own tool), ``errors`` (what the CLI shows as one-line errors), ``repo/`` (one module per kind
of row).
"""
