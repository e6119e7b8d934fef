"""Batch backends: run commands as jobs on a local pool, Slurm, HTCondor or LSF.

A backend knows jobs (a command, a directory, an environment), never calibrations.
"""
