"""The conditions-database step: a staging global tag built from a processing's signed-off payloads.

May import ``db``, ``caf``, ``backends`` and ``domain``; never ``loop``, ``defs``, the web layer or Dagster.
"""
