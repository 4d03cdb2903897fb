"""Bearer service-token authentication."""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from ..audit import Actor
from ..models import Scope, ServiceToken
from ..selectors import Position, TokenRejected, registry_position, token_authenticate
from ..services import token_mark_used

LAST_USED_PRECISION = timedelta(minutes=1)  # write last_used_at at most once a minute per token


@dataclass(frozen=True)
class ServicePrincipal:
    """request.user for a service token; the token itself is request.auth. `position` is the
    registry's position the token was checked at: the rest of the request reads at it too."""

    token: ServiceToken
    position: Position
    is_authenticated = True
    is_anonymous = False
    is_staff = False

    @property
    def username(self) -> str:
        return f"token:{self.token.name}"

    def __str__(self) -> str:
        return self.username


def request_actor(request) -> Actor:
    """Who to write into the audit log for this request."""
    source = request.META.get("REMOTE_ADDR", "")
    if isinstance(request.user, ServicePrincipal):
        token = request.user.token
        return Actor(request.user.username, source, may_write_security=token_may_write_security(token))
    return Actor(f"user:{request.user.username}", source)


def token_may_write_security(token: ServiceToken) -> bool:
    """The dedicated right (SPEC §12): security:write, on a token without environment or service limits."""
    return Scope.SECURITY_WRITE in token.scopes and not token.environments and not token.services


def token_from_header(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, None if there is no such header."""
    kind, _, value = (header or "").strip().partition(" ")
    if kind.lower() != "bearer":
        return None
    return value.strip()


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        raw = token_from_header(header)
        if raw is None:
            raise exceptions.AuthenticationFailed("use 'Authorization: Bearer <service token>'")
        return self.principal(raw)

    def principal(self, raw: str) -> tuple[ServicePrincipal, ServiceToken]:
        """The request's principal for the raw token (every protocol's one token check)."""
        # One position read serves the whole request: the token check here, the resolve later.
        position = registry_position()
        try:
            token = token_authenticate(raw, position)
        except TokenRejected as error:
            raise exceptions.AuthenticationFailed(str(error)) from None
        if token.last_used_at is None or timezone.now() - token.last_used_at > LAST_USED_PRECISION:
            token_mark_used(token)
        return ServicePrincipal(token, position), token

    def authenticate_header(self, request):
        return 'Bearer realm="config-registry"'


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    """Tells drf-spectacular how the API is authenticated."""

    target_class = ServiceTokenAuthentication
    name = "bearerToken"  # sorts before Django's cookieAuth: the scheme every service uses comes first

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "a service token (manage.py create_service_token, or the admin)",
        }
