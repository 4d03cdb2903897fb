"""Rate limits per service token (per user or address for the rest).

Fixed windows counted with cache.incr: constant work per request, shared by every process when
the cache is Redis. (DRF's SimpleRateThrottle keeps a list of every request's timestamp in the
window and re-pickles it on each request, which costs more the busier a token is.)
"""

import time
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from .authentication import ServicePrincipal

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@lru_cache(maxsize=8)
def parse_rate(rate: str) -> tuple[int, int]:
    """'1200/min' -> (1200, 60)."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip()[0]]


def _count(key: str, timeout: int) -> int:
    """One more request in this window; the count so far."""
    if hasattr(cache, "incr_with_expiry"):  # project.redis_cache: one round trip
        return cache.incr_with_expiry(key, timeout)
    try:
        return cache.incr(key)
    except ValueError:  # the window's first request
        return 1 if cache.add(key, 1, timeout) else cache.incr(key)


class PerTokenThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        limit, period = parse_rate(settings.API_THROTTLE_RATE)
        now = time.time()
        window = int(now // period)
        count = _count(f"throttle:{self._ident(request)}:{window}", period + 1)
        self._wait = (window + 1) * period - now
        return count <= limit

    def wait(self) -> float:
        return self._wait

    def _ident(self, request) -> str:
        if isinstance(request.user, ServicePrincipal):
            return f"token-{request.auth.pk}"
        if request.user is not None and request.user.is_authenticated:
            return f"user-{request.user.pk}"
        return f"addr-{self.get_ident(request)}"
