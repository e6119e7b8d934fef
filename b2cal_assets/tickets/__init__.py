"""Calibration tickets: messages rendered from loop events, kept in the calibration DB, sent to Jira.

``messages`` renders (pure), ``outbox`` stores and sends, ``jira_client`` speaks to a real Jira.
May import ``db``, ``caf``, ``backends`` and ``domain``; never ``loop``, ``defs``, the web layer or Dagster.
"""
