"""Where catalog files come from besides the built-in catalog: a site's Rucio (``rucio.py``: the skim
datasets and replicas at its RSE, through ``rucio-clients``, imported only where Rucio is used).

May import ``db``, ``caf``, ``backends`` and ``domain`` (it needs only ``domain``); never SQL of its own,
``loop``, ``defs``, the web layer or Dagster (checked by the import contracts in ``pyproject.toml``).
"""
