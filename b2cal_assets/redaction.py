"""Text for people outside the server (web pages, tickets) without the server's file paths.

An error message may carry an absolute path (an ``OSError``, a checkpoint directory, the payload store):
it tells an outsider how the server is laid out and helps no expert, who reaches logs and payloads
through the calibration page. Each such path is cut to its last part (``…/dbstore_x_rev_1.root``), so
the message still names the file. Web paths of the pages (``/b2cal/...``) and URLs are left alone.
The CLI, run by its user on their own files, shows paths as they are.
"""

from __future__ import annotations

import re

# an absolute path: "/" not inside a word, a URL ("x://", "host/") or a relative path, with at least
# one directory, and not one of the pages' own paths
_PATH = re.compile(r"(?<![\w:/.~-])/(?!b2cal/)(?:[^\s/'\"<>(),;:|*?]+/)+([^\s/'\"<>(),;:|*?]*)")


def without_server_paths(text: str) -> str:
    """``text`` with every absolute file path shortened to ``…/<last part>``."""
    return _PATH.sub(lambda m: f"…/{m.group(1)}" if m.group(1) else "…/", text)
