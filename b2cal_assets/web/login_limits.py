"""Failed-login limits per user name and per client address, so passwords cannot be guessed at speed.

Kept in the webserver's memory: one process serves the UI. After ``max_failures`` within
``lockout_seconds`` the user name (or address) is locked until the oldest of those failures is
``lockout_seconds`` old; a locked attempt is refused without asking LDAP. User names count the way
the directory compares them (Unicode NFKC, case-insensitive). ``begin_attempt`` counts an attempt as
a failure before LDAP is asked, under the lock, so parallel guesses cannot all slip past the limit.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections import defaultdict, deque
from collections.abc import Callable

from b2cal_assets.web.config import LoginLimits


class LoginRateLimiter:
    def __init__(self, limits: LoginLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._by_user: dict[str, deque[float]] = defaultdict(deque)
        self._by_address: dict[str, deque[float]] = defaultdict(deque)

    @staticmethod
    def _user_key(username: str) -> str:
        return unicodedata.normalize("NFKC", username).strip().casefold()

    def _prune(self, failures: deque[float], now: float) -> None:
        while failures and now - failures[0] >= self.limits.lockout_seconds:
            failures.popleft()

    def _wait(self, table: dict[str, deque[float]], key: str, limit: int, now: float) -> float:
        failures = table.get(key)
        if failures is None:
            return 0.0
        self._prune(failures, now)
        if not failures:
            del table[key]  # forget old names, so guessing many names cannot fill memory
            return 0.0
        if len(failures) < limit:
            return 0.0
        return failures[-limit] + self.limits.lockout_seconds - now

    def seconds_locked(self, username: str, address: str) -> float:
        """How long until this user name from this address may try again (0 = now)."""
        now = self._clock()
        with self._lock:
            return max(
                self._wait(self._by_user, self._user_key(username), self.limits.max_failures_per_user, now),
                self._wait(self._by_address, address, self.limits.max_failures_per_address, now),
            )

    def begin_attempt(self, username: str, address: str) -> tuple[float, float]:
        """``(wait, ticket)``: ``wait > 0`` refuses the attempt; otherwise it already counts as a failure
        (``ticket`` identifies it) until ``record_success`` or ``cancel_attempt`` takes it back."""
        now = self._clock()
        key = self._user_key(username)
        with self._lock:
            wait = max(
                self._wait(self._by_user, key, self.limits.max_failures_per_user, now),
                self._wait(self._by_address, address, self.limits.max_failures_per_address, now),
            )
            if wait > 0:
                return wait, now
            self._by_user[key].append(now)
            self._by_address[address].append(now)
            return 0.0, now

    def cancel_attempt(self, username: str, address: str, ticket: float) -> None:
        """The attempt was not a wrong password (the directory was down, or it succeeded)."""
        with self._lock:
            for table, key in ((self._by_user, self._user_key(username)), (self._by_address, address)):
                failures = table.get(key)
                if failures is not None and ticket in failures:
                    failures.remove(ticket)

    def record_failure(self, username: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            self._by_user[self._user_key(username)].append(now)
            self._by_address[address].append(now)

    def record_success(self, username: str) -> None:
        """A right password clears the user's failures (not the address's: one account must not unlock others)."""
        with self._lock:
            self._by_user.pop(self._user_key(username), None)
