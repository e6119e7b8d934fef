"""``TicketClient`` on a real Jira server through the ``jira`` library (REST API v2, server/data centre)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from b2cal_assets.tickets.client import TicketRequestRejected, TicketServiceError, TicketServiceUnavailable

if TYPE_CHECKING:
    from jira import JIRA

# ``requests`` and ``jira`` are imported when a ticket is sent, not when the code location loads
# (about 0.4 s each launch on a loaded machine).

TRANSIENT_STATUS = {408, 429}


def _network_failure(exc: BaseException | None) -> bool:
    """The library wraps some connection errors in a status-less JIRAError: look down the chain."""
    import requests  # deferred (see above)

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, requests.RequestException | OSError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _translate(exc: Exception, doing: str) -> TicketServiceError:
    import requests  # deferred (see above)
    from jira import JIRAError

    if isinstance(exc, JIRAError):
        status = exc.status_code
        text = (exc.text or str(exc)).strip()
        if status is None and _network_failure(exc):
            return TicketServiceUnavailable(f"Jira unreachable while {doing}: {text}"[:2000])
        if status is not None and (status >= 500 or status in TRANSIENT_STATUS):
            return TicketServiceUnavailable(f"Jira unavailable while {doing}: HTTP {status}: {text}"[:2000])
        return TicketRequestRejected(f"Jira refused {doing}: HTTP {status}: {text}"[:2000])
    if isinstance(exc, requests.RequestException | OSError):
        return TicketServiceUnavailable(f"Jira unreachable while {doing}: {exc}"[:2000])
    return TicketServiceError(f"Jira error while {doing}: {exc}"[:2000])


def _jql_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class JiraTicketClient:
    """Opens one connection on first use (so a Jira that is down at start-up delays, never breaks, the loop)."""

    def __init__(
        self,
        url: str,
        user: str,
        token: str,
        project: str,
        verify: bool | str = True,
        *,
        issue_type: str = "Task",
        timeout: float = 20.0,
        max_retries: int = 1,
    ) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self._token = token
        self.project = project
        self.verify = verify
        self.issue_type = issue_type
        self.timeout = timeout
        self.max_retries = max_retries
        self._jira: JIRA | None = None

    def __repr__(self) -> str:  # never shows the token
        return f"JiraTicketClient(url={self.url!r}, user={self.user!r}, project={self.project!r})"

    def _conn(self) -> JIRA:
        if self._jira is None:
            from jira import JIRA  # deferred (see above)

            try:
                self._jira = JIRA(
                    server=self.url,
                    basic_auth=(self.user, self._token),
                    options={"verify": self.verify},
                    max_retries=self.max_retries,
                    timeout=self.timeout,
                )
            except Exception as exc:
                raise _translate(exc, f"connecting to {self.url}") from exc
        return self._jira

    def _call(self, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        jira = self._conn()
        try:
            return fn(jira, *args, **kwargs)
        except Exception as exc:
            raise _translate(exc, doing) from exc

    def find_issue(self, *, label: str) -> str | None:
        jql = f"project = {_jql_quote(self.project)} AND labels = {_jql_quote(label)} ORDER BY created ASC"
        found = self._call(
            f"searching for label {label}", lambda j: j.search_issues(jql, maxResults=1, fields="summary")
        )
        return found[0].key if found else None

    def create_issue(
        self, *, summary: str, description: str, assignee: str, due_date: date | None, label: str
    ) -> str:
        fields: dict[str, Any] = {
            "project": {"key": self.project},
            "issuetype": {"name": self.issue_type},
            "summary": summary,
            "description": description,
            "labels": [label],
        }
        if assignee:
            fields["assignee"] = {"name": assignee}
        if due_date is not None:
            fields["duedate"] = due_date.isoformat()
        issue = self._call(f"creating {summary!r}", lambda j: j.create_issue(fields=fields, prefetch=False))
        return str(issue.key)

    def add_comment(self, key: str, body: str) -> None:
        self._call(f"commenting on {key}", lambda j: j.add_comment(key, body))

    def has_comment_containing(self, key: str, text: str) -> bool:
        comments = self._call(f"reading comments of {key}", lambda j: j.comments(key))
        return any(text in (c.body or "") for c in comments)

    def add_attachment(self, key: str, path: Path, name: str) -> None:
        def attach(j: JIRA) -> None:
            with open(path, "rb") as fh:
                j.add_attachment(key, fh, filename=name)

        self._call(f"attaching {name} to {key}", attach)

    def attachments(self, key: str) -> set[tuple[str, int]]:
        issue = self._call(f"reading {key}", lambda j: j.issue(key, fields="attachment"))
        return {(a.filename, int(a.size)) for a in (getattr(issue.fields, "attachment", None) or [])}

    def assign(self, key: str, assignee: str) -> None:
        self._call(f"assigning {key} to {assignee}", lambda j: j.assign_issue(key, assignee))
