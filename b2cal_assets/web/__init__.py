"""The served webserver: Dagster's UI behind the LDAP login, roles, and the calibration pages.

It calls ``loop`` (through ``loop/factory.py``), ``db`` and ``domain``; never the Dagster adapter (``defs``).
"""
