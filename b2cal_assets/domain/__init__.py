"""The calibration domain: settings, IoVs, filters, the dependency graph, processings and the states.

Pure Python: it imports no other layer of b2cal, and nothing of Dagster, SQLAlchemy, subprocess or
ldap3 (checked by the import contracts in ``pyproject.toml``). Every other layer may import it.
"""
