"""Counting events in fixed time windows, in the shared cache (Redis across processes)."""

import logging
import time

from django.core.cache import cache

from .exceptions import CacheUnavailable

logger = logging.getLogger(__name__)


def window_count(name: str, period: int) -> tuple[int, float]:
    """Count one more event for `name` in the current window of `period` seconds.
    Returns the count so far in this window and the seconds until the next window.
    With the shared cache down, limits are not enforced (0): serving beats refusing everyone."""
    now = time.time()
    window = int(now // period)
    key, timeout = f"ratelimit:{name}:{window}", period + 1
    if hasattr(cache, "incr_with_expiry"):  # project.redis_cache: one round trip
        try:
            count = cache.incr_with_expiry(key, timeout)
        except CacheUnavailable:
            return 0, (window + 1) * period - now
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # the window's first event
            count = 1 if cache.add(key, 1, timeout) else cache.incr(key)
    return count, (window + 1) * period - now
