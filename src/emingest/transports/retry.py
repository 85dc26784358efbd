"""The one retry policy: exponential backoff with jitter, ``Retry-After`` honoured.

Only :class:`~emingest.errors.TransientSourceError` is retried (timeouts, stalls, resets,
429/5xx, short bodies); every other error goes straight to the caller. The transports call
:func:`retry_call` around one *attempt*; an attempt that resumes (a download continuing from
its partial file) makes each retry cheaper than the first try.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from emingest.errors import TransientSourceError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait. ``attempts`` counts the first try."""

    attempts: int = 6
    initial_s: float = 1.0
    max_s: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.5
    """Fraction of each backoff drawn at random (0: none, 1: "full jitter")."""
    max_retry_after_s: float = 300.0
    """A server's ``Retry-After`` is obeyed up to this many seconds."""

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 = the first try)."""
        backoff = min(self.max_s, self.initial_s * self.multiplier ** max(0, attempt - 1))
        wait = backoff * (1.0 - self.jitter * random.random())
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.max_retry_after_s))
        return max(0.0, wait)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds (decimals accepted) or HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_call(
    func: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``func()``, retried on :class:`TransientSourceError` as ``policy`` says.

    The last transient error is raised again (with the attempt count in its message) when
    the attempts run out.
    """
    attempt = 1
    while True:
        try:
            return func()
        except TransientSourceError as err:
            if attempt >= policy.attempts:
                raise TransientSourceError(
                    f"{err} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})",
                    retry_after=err.retry_after,
                ) from err
            wait = policy.delay(attempt, err.retry_after)
            log.warning(
                "%s: %s; retry %d/%d in %.2f s", what, err, attempt, policy.attempts - 1, wait
            )
            sleep(wait)
            attempt += 1


__all__ = ["RetryPolicy", "parse_retry_after", "retry_call"]
