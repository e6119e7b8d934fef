"""The Dagster adapter: it turns scripts, processings and backends into assets, checks, sensors and schedules.

Nothing here writes SQL; the calibration database is reached through ``b2cal_assets.loop``. May import
``loop``, ``tickets``, ``conditions``, ``payloads``, ``caf``, ``backends`` and ``domain``; never
SQLAlchemy, ``db.models`` or ``db.repo``, nor the web layer (checked by the import contracts).
"""
