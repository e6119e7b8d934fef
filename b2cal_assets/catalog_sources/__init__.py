"""Where catalog files come from besides the built-in catalog: a site's Rucio (``rucio.py``)."""
