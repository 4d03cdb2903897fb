"""OpenFeature Remote Evaluation Protocol under /ofrep/v1/ (SPEC §9.3): the OpenFeature SDK with its OFREP
provider evaluates the registry's keys as flags. A thin adapter over the same resolution, token
check, scopes, limits and throttle as /api/v1/; errors in OFREP's shape ({key, errorCode, errorDetails}).

A flag is a resolved key of the context (targetingKey = username; environment and service from the
context, or from a token limited to exactly one of each). Secrets are never served here. Not
supported: event streams (SSE), flag sets, provider-side caching hints beyond the bulk ETag.
"""

import hashlib
import json
from typing import Any

from django.http import HttpResponse, JsonResponse
from django.urls import re_path
from rest_framework import exceptions
from rest_framework.views import APIView

from .. import selectors
from ..api.authentication import ServicePrincipal, ServiceTokenAuthentication
from ..api.permissions import context_refusal
from ..exceptions import CacheUnavailable, InvalidInput, NotFound, RegistryUnavailable
from ..memory import PositionMemo
from ..models import Level, Scope
from ..selectors import ResolvedConfig
from ..usage import USAGE
from ..validation import parse_layer_ref
from .negotiation import ProtocolForm

TARGETED_LEVELS = {Level.GROUP, Level.USER}
# Bulk answers (ETag, body) by (revision, context): what a revision resolved to never changes.
BULK_ANSWERS: PositionMemo[tuple, tuple[str, bytes]] = PositionMemo("ofrep bulk answers", 512, lambda p: p.epoch)


class OfrepError(Exception):
    def __init__(self, status: int, code: str, details: str, headers: dict | None = None):
        super().__init__(details)
        self.status, self.code, self.details, self.headers = status, code, details, headers or {}


def token_of(request) -> str | None:
    """`Authorization: Bearer <token>` or `X-API-Key: <token>`."""
    kind, _, value = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if kind.lower() == "bearer" and value.strip():
        return value.strip()
    return request.META.get("HTTP_X_API_KEY", "").strip() or None


class OfrepTokenAuthentication(ServiceTokenAuthentication):
    def authenticate(self, request):
        raw = token_of(request)
        if raw is None:
            raise OfrepError(401, "GENERAL", "send the service token: 'Authorization: Bearer <token>' or X-API-Key")
        return self.principal(raw)

    def authenticate_header(self, request):
        return 'Bearer realm="config-registry"'


class OfrepView(APIView):
    content_negotiation_class = ProtocolForm
    authentication_classes = [OfrepTokenAuthentication]
    permission_classes: list = []

    def flag_key(self) -> str:
        return ""

    def evaluate(self, request) -> ResolvedConfig:
        """The context's resolution (secrets masked) from the body, after the token's scope and limits."""
        if not isinstance(request.user, ServicePrincipal):
            raise OfrepError(401, "GENERAL", "send the service token: 'Authorization: Bearer <token>' or X-API-Key")
        token = request.auth
        if Scope.CONFIG_READ not in token.scopes:
            raise OfrepError(403, "GENERAL", f"token {token.name!r} lacks the scope 'config:read'")
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise OfrepError(400, "PARSE_ERROR", 'the body is not JSON: send {"context": {…}}') from None
        context = body.get("context", {}) if isinstance(body, dict) else None
        if not isinstance(context, dict):
            raise OfrepError(400, "PARSE_ERROR", "the body must be a JSON object with an object 'context'")
        environment = _dimension(context, "environment", token.environments)
        service = _dimension(context, "service", token.services)
        user = context.get("targetingKey")
        if user is not None and not isinstance(user, str):
            raise OfrepError(400, "INVALID_CONTEXT", "targetingKey must be a username (text)")
        refusal = context_refusal(token, environment=environment, service=service)
        if refusal:
            raise OfrepError(403, "GENERAL", refusal)
        USAGE.served(token.pk, environment, service, user)
        return selectors.config_view(
            environment=environment, service=service, user=user or None, position=request.user.position
        )

    def handle_exception(self, exc):
        key = self.flag_key()
        if isinstance(exc, OfrepError):
            return _error(key, exc.status, exc.code, exc.details, exc.headers)
        if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
            return _error(key, 401, "GENERAL", str(exc.detail))
        if isinstance(exc, InvalidInput):
            details = "; ".join(f"{field}: {problem}" for field, problem in (exc.errors or {}).items())
            return _error(key, 400, "INVALID_CONTEXT", f"{exc}: {details}" if details else str(exc))
        if isinstance(exc, NotFound):  # an unknown user
            return _error(key, 400, "INVALID_CONTEXT", str(exc))
        if isinstance(exc, exceptions.Throttled):
            wait = max(1, int(exc.wait or 1))
            message = f"too many requests: retry in {wait} seconds"
            return _error(key, 429, "GENERAL", message, {"Retry-After": str(wait)})
        if isinstance(exc, RegistryUnavailable | CacheUnavailable):
            return _error(key, 503, "GENERAL", "the registry database is unavailable; retry shortly")
        return super().handle_exception(exc)


def _dimension(context: dict, name: str, allowed: list[str]) -> str:
    value = context.get(name)
    if value is None and len(allowed) == 1:
        return allowed[0]
    if not isinstance(value, str):
        raise OfrepError(
            400, "INVALID_CONTEXT", f"the context needs '{name}' (text), unless the token is limited to exactly one"
        )
    return value


def _error(key: str, status: int, code: str, details: str, headers: dict | None = None) -> JsonResponse:
    return JsonResponse({"key": key, "errorCode": code, "errorDetails": details}, status=status, headers=headers)


def _flag(resolved: ResolvedConfig, key: str) -> dict[str, Any]:
    provenance = resolved.provenance[key]
    try:
        targeted = parse_layer_ref(provenance.layer)[0] in TARGETED_LEVELS
    except InvalidInput:  # key definitions' defaults
        targeted = False
    version = provenance.version or 0
    return {
        "key": key,
        "value": resolved.values[key],
        "reason": "TARGETING_MATCH" if targeted else "STATIC",
        "variant": f"{provenance.layer}@{version}",
        "metadata": {"layer": provenance.layer, "version": version, "revision": resolved.revision},
    }


class FlagView(OfrepView):
    def flag_key(self) -> str:
        return self.kwargs.get("key", "")

    def post(self, request, key: str):
        resolved = self.evaluate(request)
        if key in resolved.secrets:
            raise OfrepError(404, "FLAG_NOT_FOUND", f"{key} is a secret: secrets are not served through OFREP")
        if key not in resolved.values:
            raise OfrepError(404, "FLAG_NOT_FOUND", f"no key {key} in {selectors.context_label(resolved.context)}")
        return JsonResponse(_flag(resolved, key))


class BulkView(OfrepView):
    def post(self, request):
        resolved = self.evaluate(request)
        position = request.user.position
        request_key = (resolved.revision, tuple(resolved.context.items()))
        known = BULK_ANSWERS.get(position, request_key)
        if known is None:
            identity = ("ofrep", position.epoch, *request_key)
            etag = '"' + hashlib.sha256(repr(identity).encode()).hexdigest()[:32] + '"'
            flags = [_flag(resolved, key) for key in resolved.values if key not in resolved.secrets]
            known = (etag, json.dumps({"flags": flags}).encode())
            BULK_ANSWERS.put(position, request_key, known)
        etag, body = known
        if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
            return HttpResponse(status=304, headers={"ETag": etag})
        return HttpResponse(body, content_type="application/json", headers={"ETag": etag})


urlpatterns = [
    re_path(r"^evaluate/flags/?$", BulkView.as_view()),
    re_path(r"^evaluate/flags/(?P<key>.+)$", FlagView.as_view()),
]
