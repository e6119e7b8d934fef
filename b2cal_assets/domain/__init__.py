"""The calibration domain: settings, IoVs, filters, the dependency graph and processings.

Nothing here imports Dagster, SQLAlchemy, subprocess or ldap3.
"""
