"""Counting events in fixed time windows, in the shared cache (Redis across processes).

window_count() counts every event in the shared cache: exact, one round trip per event.
window_count_batched() is for limits checked on every API request: far from its limit, a process
adds its events to the shared count in batches (at most every FLUSH_SECONDS) and counts locally in
between; from half the limit on, it counts every event in the shared cache, like window_count().
So a limit holds exactly within a process, and across processes a burst can pass it by at most
what the other processes counted in their last FLUSH_SECONDS and had not added yet.
"""

import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from django.core.cache import cache

from .exceptions import CacheUnavailable

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FLUSH_SECONDS = 0.1
MAX_TALLIES = 10_000  # bound memory against floods of distinct names


@lru_cache(maxsize=8)
def parse_rate(rate: str) -> tuple[int, int]:
    """'1200/min' -> (1200, 60)."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip()[0]]


def _window(name: str, period: int) -> tuple[str, int, float]:
    """The cache key of the current window, its expiry, and the seconds until the next window."""
    now = time.time()
    window = int(now // period)
    return f"ratelimit:{name}:{window}", period + 1, (window + 1) * period - now


def _shared_add(key: str, timeout: int, amount: int) -> int:
    """Add `amount` to the shared count at `key`; the count after. Raises CacheUnavailable."""
    if hasattr(cache, "incr_with_expiry"):  # project.infra.redis_cache: one round trip
        return cache.incr_with_expiry(key, timeout, amount)
    try:
        return cache.incr(key, amount)
    except ValueError:  # the window's first event
        return amount if cache.add(key, amount, timeout) else cache.incr(key, amount)


def window_count(name: str, period: int) -> tuple[int, float]:
    """Count one more event for `name` in the current window of `period` seconds.
    Returns the count so far in this window and the seconds until the next window.
    With the shared cache down, limits are not enforced (0): serving beats refusing everyone."""
    key, timeout, wait = _window(name, period)
    try:
        return _shared_add(key, timeout, 1), wait
    except CacheUnavailable:
        return 0, wait


def window_peek(name: str, period: int) -> tuple[int, float]:
    """The count of `name` in the current window so far, without counting (0 without the cache)."""
    key, _, wait = _window(name, period)
    try:
        return int(cache.get(key) or 0), wait
    except (TypeError, ValueError):
        return 0, wait


@dataclass
class _Tally:
    """This process's view of one window: the shared count when last added to, and events since."""

    shared: int = 0
    unsent: int = 0
    sent_at: float = 0.0


_tallies: dict[str, _Tally] = {}
_tallies_lock = threading.Lock()


def window_count_batched(name: str, period: int, limit: int) -> tuple[int, float]:
    """window_count() for a limit of `limit` events, without a round trip for most events."""
    key, timeout, wait = _window(name, period)
    with _tallies_lock:
        tally = _tallies.get(key)
        if tally is None:
            if len(_tallies) >= MAX_TALLIES:
                _tallies.clear()
            tally = _tallies[key] = _Tally()
        tally.unsent += 1
        now = time.monotonic()
        near_limit = tally.shared + tally.unsent > limit // 2
        if not near_limit and now - tally.sent_at < FLUSH_SECONDS:
            return tally.shared + tally.unsent, wait
        # Send what is unsent, outside the lock: the other threads keep counting meanwhile.
        amount, tally.unsent, tally.sent_at = tally.unsent, 0, now
    try:
        shared = _shared_add(key, timeout, amount)
    except CacheUnavailable:
        return 0, wait
    with _tallies_lock:
        tally.shared = max(tally.shared, shared)
        return shared + tally.unsent, wait


def tallies_clear() -> None:
    """Forget this process's unsent counts (tests)."""
    with _tallies_lock:
        _tallies.clear()
