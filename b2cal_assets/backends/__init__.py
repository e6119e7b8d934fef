"""Batch backends: run commands as jobs on a local pool, Slurm, HTCondor or LSF.

A backend knows jobs (a command, a directory, an environment), never calibrations; it imports nothing
of ``domain``, ``caf``, ``db``, ``loop`` or Dagster. ``base`` is the interface, ``arrays`` the submit and
cancel the schedulers share, ``options`` how each option is declared once, ``commands`` the injected
command runner, and one module per backend (renderers, pure parsers, the backend class).
"""
