"""Payload archives: download (``archive``) and the checks on an expert's replacement upload (``upload``).

May import ``db``, ``caf``, ``backends`` and ``domain``; never ``loop``, ``defs``, the web layer or Dagster.
"""
