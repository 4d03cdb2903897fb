"""Rate limits per service token (per user or address for the rest)."""

from rest_framework.throttling import SimpleRateThrottle

from .authentication import ServicePrincipal


class PerTokenThrottle(SimpleRateThrottle):
    scope = "token"

    def get_cache_key(self, request, view):
        if isinstance(request.user, ServicePrincipal):
            ident = f"token-{request.auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"addr-{self.get_ident(request)}"
        return f"throttle:{self.scope}:{ident}"
