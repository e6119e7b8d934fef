"""What happens next in a processing: readiness, submission windows, deadlines, sign-off rules.

Shared by the Dagster sensors, the CLI and the web pages so that every way in follows the same rules.
``service.LoopService`` is the front; its parts share one frozen ``context.LoopContext``.
May import ``domain``, ``db``, ``caf``, ``backends`` (option checks), ``conditions``, ``payloads`` and
``tickets`` (and ``home``, ``files``); never Dagster, the web layer or the CLI.
"""
