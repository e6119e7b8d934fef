"""The conditions database: a staging global tag built from a processing's signed-off payloads
(``staging``) and the REST API v2 it is uploaded through (``condb_api`` its documents, ``condb_client``
the client and ``build_client``, the one way one is made).

May import ``db``, ``caf``, ``backends`` and ``domain`` (and ``settings``, ``files``); never ``loop``,
``defs``, the web layer or Dagster.
"""
