"""Rate limits per service token (per user or address for the rest).

Fixed windows counted in the shared cache (config_registry.ratelimit), in batches while far from
the limit: constant work per request, and most requests need no round trip to Redis. (DRF's
SimpleRateThrottle keeps every request's timestamp in the window and re-pickles the list on each
request, which costs more the busier a token is.)
"""

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from ..ratelimit import parse_rate, window_count_batched
from .authentication import ServicePrincipal


class PerTokenThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        limit, period = parse_rate(settings.API_THROTTLE_RATE)
        count, self._wait = window_count_batched(f"api:{self._ident(request)}", period, limit)
        return count <= limit

    def wait(self) -> float:
        return self._wait

    def _ident(self, request) -> str:
        if isinstance(request.user, ServicePrincipal):
            return f"token-{request.auth.pk}"
        if request.user is not None and request.user.is_authenticated:
            return f"user-{request.user.pk}"
        return f"addr-{self.get_ident(request)}"
