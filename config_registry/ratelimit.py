"""Counting events in fixed time windows, in the shared cache (Redis across processes)."""

import time

from django.core.cache import cache


def window_count(name: str, period: int) -> tuple[int, float]:
    """Count one more event for `name` in the current window of `period` seconds.
    Returns the count so far in this window and the seconds until the next window."""
    now = time.time()
    window = int(now // period)
    key, timeout = f"ratelimit:{name}:{window}", period + 1
    if hasattr(cache, "incr_with_expiry"):  # project.redis_cache: one round trip
        count = cache.incr_with_expiry(key, timeout)
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # the window's first event
            count = 1 if cache.add(key, 1, timeout) else cache.incr(key)
    return count, (window + 1) * period - now
