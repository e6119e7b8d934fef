"""The calibration database: SQLAlchemy 2 models and functions that take a ``Session``.

``models`` (the tables; changed only through a new Alembic migration in ``migrations/``), ``connection``
(URLs, engines, ``session_scope``), ``migrate`` (Alembic from Python, on ``connection``), ``engine`` (the
public face: ``connection`` plus ``ensure_schema``/``check_schema``), ``transactions`` (a whole transaction
re-run after a deadlock, with tenacity), ``backup`` (dumps and restores with each engine's own tool),
``errors`` (what the CLI shows as one-line errors), ``repo/`` (one module per kind of row).

It may import ``domain``, ``settings``, ``home`` and ``files``; never Dagster or the layers above.
"""
