"""The Dagster adapter: it turns scripts, processings and backends into assets, checks, sensors and schedules.

Nothing here writes SQL; the calibration database is reached through ``b2cal_assets.loop``.
"""
