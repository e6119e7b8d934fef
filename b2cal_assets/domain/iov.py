"""Intervals of validity, compatible with the framework's ``caf.utils.IoV``."""

from __future__ import annotations

from typing import NamedTuple

#: IoV numbers are stored as signed 32-bit integers (the framework's, and every engine's INTEGER)
MAX_IOV_NUMBER = 2**31 - 1


class ExpRun(NamedTuple):
    """One (experiment, run), as the framework's ``caf.utils.ExpRun``."""

    exp: int
    run: int

    def make_iov(self) -> IoV:
        """The single-run IoV of this run."""
        return IoV(self.exp, self.run, self.exp, self.run)

    def find_gap(self, other: ExpRun) -> IoV | None:
        """The runs strictly between two runs of one experiment, or None (other experiments: unknown)."""
        lower, upper = sorted((self, other))
        if lower.exp == upper.exp and upper.run - lower.run > 1:
            return IoV(lower.exp, lower.run + 1, lower.exp, upper.run - 1)
        return None


class IoV(NamedTuple):
    """Inclusive ``(exp_low, run_low, exp_high, run_high)``; ``-1`` on the high end means open."""

    exp_low: int = 0
    run_low: int = 0
    exp_high: int = -1
    run_high: int = -1

    @property
    def is_open_ended(self) -> bool:
        return self.exp_high == -1 and self.run_high == -1

    @property
    def start(self) -> ExpRun:
        return ExpRun(self.exp_low, self.run_low)

    def _high(self) -> tuple[float, float]:
        exp = float("inf") if self.exp_high == -1 else self.exp_high
        run = float("inf") if self.run_high == -1 else self.run_high
        return (exp, run)

    def contains_run(self, exp: int, run: int) -> bool:
        return (self.exp_low, self.run_low) <= (exp, run) <= self._high()

    def contains(self, other: IoV) -> bool:
        return (self.exp_low, self.run_low) <= (other.exp_low, other.run_low) and other._high() <= self._high()

    def overlaps(self, other: IoV) -> bool:
        return (self.exp_low, self.run_low) <= other._high() and (other.exp_low, other.run_low) <= self._high()

    def __str__(self) -> str:
        return f"{self.exp_low},{self.run_low},{self.exp_high},{self.run_high}"

    @classmethod
    def parse(cls, text: str) -> IoV:
        """Parse ``e1,r1,e2,r2`` (the ``database.txt`` and CLI form)."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 4:
            raise ValueError(f"an IoV has four comma-separated integers exp_low,run_low,exp_high,run_high; got {text!r}")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"an IoV has four integers; got {text!r}") from None
        iov = cls(*values)
        iov.check()
        return iov

    def check(self) -> None:
        """Raise ``ValueError`` naming what is wrong with this IoV."""
        too_big = [v for v in self if v > MAX_IOV_NUMBER or v < -1]
        if too_big:
            raise ValueError(
                f"IoV {self}: {too_big[0]} is out of range; experiment and run numbers are 0 to "
                f"{MAX_IOV_NUMBER} (-1 for an open high end)"
            )
        if self.exp_low < 0 or self.run_low < 0:
            raise ValueError(f"IoV {self}: the low end must be non-negative")
        if (self.exp_high == -1) != (self.run_high == -1):
            raise ValueError(f"IoV {self}: an open end has both exp_high and run_high = -1")
        if not self.is_open_ended and (self.exp_high, self.run_high) < (self.exp_low, self.run_low):
            raise ValueError(f"IoV {self}: the high end is before the low end")
