"""Rate limits per service token (per user or address for the rest).

Fixed windows counted in the shared cache (config_registry.ratelimit): constant work per request.
(DRF's SimpleRateThrottle keeps every request's timestamp in the window and re-pickles the list
on each request, which costs more the busier a token is.)
"""

from functools import lru_cache

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from ..ratelimit import window_count
from .authentication import ServicePrincipal

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@lru_cache(maxsize=8)
def parse_rate(rate: str) -> tuple[int, int]:
    """'1200/min' -> (1200, 60)."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip()[0]]


class PerTokenThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        limit, period = parse_rate(settings.API_THROTTLE_RATE)
        count, self._wait = window_count(f"api:{self._ident(request)}", period)
        return count <= limit

    def wait(self) -> float:
        return self._wait

    def _ident(self, request) -> str:
        if isinstance(request.user, ServicePrincipal):
            return f"token-{request.auth.pk}"
        if request.user is not None and request.user.is_authenticated:
            return f"user-{request.user.pk}"
        return f"addr-{self.get_ident(request)}"
