"""The served webserver: Dagster's UI behind the LDAP login, roles, and the calibration pages.

It calls ``loop`` (through ``loop/factory.py``), ``db``, ``payloads`` and ``domain`` (and ``settings``,
where its login variables are declared); never the Dagster adapter (``defs``) nor the CLI.
"""
