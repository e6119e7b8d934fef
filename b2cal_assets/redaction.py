"""Text for people outside the server (web pages, tickets) without the server's file paths.

An error message may carry an absolute path (an ``OSError``, a checkpoint directory, the payload store):
it tells an outsider how the server is laid out and helps no expert, who reaches logs and payloads
through the calibration page. Each such path is cut to its last part (``…/dbstore_x_rev_1.root``), so
the message still names the file. Web paths of the pages (``/b2cal/...``) and URLs are left alone,
and so is the directory of a failed job's logs (``Logs in <dir>``, as the runner and the cDST step say
it): the expert needs it to read the logs at the site, and ``…/0`` names nothing.
The CLI, run by its user on their own files, shows paths as they are.
"""

from __future__ import annotations

import re

# an absolute path: "/" not inside a word, a URL ("x://", "host/") or a relative path, with at least
# one directory, and not one of the pages' own paths
_PATH = re.compile(r"(?<![\w:/.~-])/(?!b2cal/)(?:[^\s/'\"<>(),;:|*?]+/)+([^\s/'\"<>(),;:|*?]*)")


_KEPT_AFTER = "Logs in "  # a failed job's log directory (caf/runner.py, caf/cdst_production.py)


def without_server_paths(text: str) -> str:
    """``text`` with every absolute file path shortened to ``…/<last part>``, but a job's log directory."""

    def shortened(m: re.Match[str]) -> str:
        if text.endswith(_KEPT_AFTER, 0, m.start()):
            return m.group(0)
        return f"…/{m.group(1)}" if m.group(1) else "…/"

    return _PATH.sub(shortened, text)
