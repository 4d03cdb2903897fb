"""Who may do what: token scopes, and a token's environment/service limits."""

from rest_framework import exceptions, permissions

from ..models import Level, ServiceToken
from ..validation import parse_layer_ref
from .authentication import ServicePrincipal


def context_refusal(token: ServiceToken, *, environment: str | None = None, service: str | None = None) -> str | None:
    """Why `token` may not read this environment and service (empty limits allow all), or None.
    The one check of a token's limits, for the API and the config watch alike."""
    for label, value, allowed in (
        ("environment", environment, token.environments),
        ("service", service, token.services),
    ):
        if value is not None and allowed and value not in allowed:
            return f"token {token.name!r} is limited to {label}s {', '.join(allowed)}; not {value!r}"
    return None


def require_context(token: ServiceToken, *, environment: str | None = None, service: str | None = None) -> None:
    """403 unless `token` may read this environment and service."""
    refusal = context_refusal(token, environment=environment, service=service)
    if refusal:
        raise exceptions.PermissionDenied(refusal)


def require_layer(token: ServiceToken, ref: str) -> None:
    """A limited token reaches a layer only if everything the layer applies to is within its
    limits: environment:E needs E allowed and no service limit (it applies to every service in
    E), service:S the converse; global, group and user layers need a token without limits."""
    level, name = parse_layer_ref(ref)
    reach_ok = (
        (level == Level.ENVIRONMENT and not token.services and (not token.environments or name in token.environments))
        or (level == Level.SERVICE and not token.environments and (not token.services or name in token.services))
        or (not token.environments and not token.services)
    )
    if not reach_ok:
        limits = ", ".join(
            f"{label} {', '.join(values)}"
            for label, values in (("environments", token.environments), ("services", token.services))
            if values
        )
        raise exceptions.PermissionDenied(
            f"token {token.name!r} is limited to {limits}; layer {ref} reaches beyond that"
        )


def may_reach_layer(token: ServiceToken, ref: str) -> bool:
    """require_layer() as a question: listings show only the layers the token reaches."""
    try:
        require_layer(token, ref)
    except exceptions.PermissionDenied:
        return False
    return True


class HasTokenScope(permissions.BasePermission):
    """A service token holding the scope the view names for the method (view.required_scopes)."""

    def has_permission(self, request, view):
        if not isinstance(request.user, ServicePrincipal):
            raise exceptions.NotAuthenticated("send a service token: 'Authorization: Bearer <token>'")
        scope = view.required_scopes.get(request.method)
        if scope and scope not in request.auth.scopes:
            raise exceptions.PermissionDenied(f"token {request.auth.name!r} lacks the scope '{scope}'")
        return True


class IsEndUser(permissions.BasePermission):
    """A signed-in person (session), not a service token."""

    def has_permission(self, request, view):
        if isinstance(request.user, ServicePrincipal):
            raise exceptions.PermissionDenied("this endpoint is for signed-in users, not service tokens")
        if not (request.user and request.user.is_authenticated):
            raise exceptions.NotAuthenticated("sign in first")
        return True
