"""The demo's calibration scripts, in the framework's form (loaded through the ``prompt`` import shim).

The loader skips files starting with ``_``; this file only makes the folder part of the package so the
scripts ship with it.
"""
