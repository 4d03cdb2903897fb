"""Spring Cloud Config under /spring/ (SPEC §9.2): the unmodified config-client (Python), cloud-config-client
(Node) or Spring's own client reads a service's configuration. A thin adapter: the same selectors,
services, token check, scopes, limits and throttle as /api/v1/; errors in Spring Boot's shape.

application = service, profile = environment (one), label = a revision (absent, main, master or
latest: now). Property sources are the service's layers, most specific first (index 0 wins), each
flattened the Spring way; the .yml/.yaml/.properties/.json forms are the merged view as one file.
Not supported: a user dimension (users are the registry's, not Spring's), /encrypt and /decrypt,
several profiles at once, plain-text resources (/{application}/{profile}/{label}/{path}).
"""

import base64
import json
from typing import Any

import yaml
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.urls import re_path
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.views import APIView

from .. import selectors, services
from ..api.authentication import ServicePrincipal, ServiceTokenAuthentication, request_actor
from ..api.permissions import context_refusal
from ..exceptions import CacheUnavailable, InvalidInput, NotFound, RegistryUnavailable
from ..memory import PositionMemo
from ..models import Scope
from ..usage import USAGE
from .negotiation import ProtocolForm

NOW_LABELS = {None, "", "main", "master", "latest"}
# Answers without secrets by (application, profile, label, revision): what a revision showed never changes.
ANSWERS: PositionMemo[tuple, bytes] = PositionMemo("spring answers", 256, lambda position: position.epoch)
REALM = 'Basic realm="config-registry"'


class SpringError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def spring_error(request, status: int, message: str) -> JsonResponse:
    """Spring Boot's error body; a 401 says how to authenticate."""
    reasons = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests"}
    body = {
        "timestamp": timezone.now().isoformat(),
        "status": status,
        "error": reasons.get(status, "Service Unavailable"),
        "message": message,
        "path": request.path,
    }
    response = JsonResponse(body, status=status)
    if status == 401:
        response["WWW-Authenticate"] = REALM
    return response


def token_of(request) -> str | None:
    """The service token: Basic (any user name, the token as password), Bearer, or X-Config-Token."""
    header = request.META.get("HTTP_AUTHORIZATION", "").strip()
    kind, _, value = header.partition(" ")
    if kind.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2] or None
        except (ValueError, UnicodeDecodeError):
            return None
    if kind.lower() == "bearer":
        return value.strip() or None
    return request.META.get("HTTP_X_CONFIG_TOKEN", "").strip() or None


class SpringTokenAuthentication(ServiceTokenAuthentication):
    def authenticate(self, request):
        raw = token_of(request)
        if raw is None:
            raise SpringError(401, "send the service token as the Basic password, a Bearer token or X-Config-Token")
        return self.principal(raw)

    def authenticate_header(self, request):
        return REALM


def flatten(value: Any, prefix: str, into: dict[str, Any]) -> dict[str, Any]:
    """Spring's flat property names: `a.b` for objects, `a[0]` for lists, scalars as they are."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            flatten(inner, f"{prefix}.{key}", into)
    elif isinstance(value, list) and value:
        for index, inner in enumerate(value):
            flatten(inner, f"{prefix}[{index}]", into)
    else:
        into[prefix] = value
    return into


def flat_source(entries: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key in sorted(entries):
        flatten(entries[key], key, flat)
    return flat


def nested(values: dict[str, Any]) -> dict[str, Any]:
    """The merged view as one tree for the .yml and .json forms: `a.b` keys nest under `a`. A key
    that cannot nest (`a.b` beside a scalar `a`) stays whole at that level, which Spring reads alike."""
    tree: dict[str, Any] = {}
    for key in sorted(values):
        node, parts = tree, key.split(".")
        for index, part in enumerate(parts[:-1]):
            if part not in node:
                node[part] = {}
            elif not isinstance(node[part], dict):
                parts = parts[:index] + [".".join(parts[index:])]
                break
            node = node[part]
        last, value = parts[-1], values[key]
        if last not in node:
            node[last] = value
        elif isinstance(node[last], dict) and isinstance(value, dict) and not node[last].keys() & value.keys():
            node[last].update(value)
        else:
            tree[key] = value  # would overwrite another key's value: kept whole instead
    return tree


def properties_text(values: dict[str, Any]) -> str:
    """Java properties lines (`key: value`, as Spring's server writes them), escaped as the format wants."""

    def escaped(text: str, *, key: bool) -> str:
        text = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
        if key:
            text = text.replace(":", "\\:").replace("=", "\\=").replace(" ", "\\ ")
        return text

    def scalar(value: Any) -> str:
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value)

    flat = flat_source(values)
    return "".join(f"{escaped(key, key=True)}: {escaped(scalar(value), key=False)}\n" for key, value in flat.items())


FORMS = {
    "json": ("application/json", lambda values: json.dumps(nested(values), indent=2, ensure_ascii=False) + "\n"),
    "yml": ("text/plain; charset=utf-8", lambda values: yaml_text(nested(values))),
    "yaml": ("text/plain; charset=utf-8", lambda values: yaml_text(nested(values))),
    "properties": ("text/plain; charset=utf-8", properties_text),
}


def yaml_text(tree: dict[str, Any]) -> str:
    return yaml.safe_dump(tree, default_flow_style=False, sort_keys=False, allow_unicode=True) if tree else "{}\n"


class SpringView(APIView):
    """What both forms check first: the token's scope, one profile, the label, the token's limits."""

    content_negotiation_class = ProtocolForm
    authentication_classes = [SpringTokenAuthentication]
    permission_classes: list = []

    def revision_checked(self, request, application: str, profile: str, label: str | None) -> int | None:
        if not isinstance(request.user, ServicePrincipal):
            raise SpringError(401, "send the service token as the Basic password, a Bearer token or X-Config-Token")
        if Scope.CONFIG_READ not in request.auth.scopes:
            raise SpringError(403, f"token {request.auth.name!r} lacks the scope 'config:read'")
        if "," in profile:
            raise SpringError(400, "one profile (the environment) at a time: several profiles are not supported")
        if label in NOW_LABELS:
            revision = None
        elif label.isdigit():
            revision = int(label)
        else:
            raise SpringError(404, f"no label {label!r}: labels are revisions (a number), or main/master/latest")
        refusal = context_refusal(request.auth, environment=profile, service=application)
        if refusal:
            raise SpringError(403, refusal)
        USAGE.served(request.auth.pk, profile, application, None)
        return revision

    def handle_exception(self, exc):
        if isinstance(exc, SpringError):
            return spring_error(self.request, exc.status, exc.message)
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            return spring_error(self.request, 401, str(exc.detail))
        if isinstance(exc, InvalidInput):
            details = "; ".join(f"{field}: {problem}" for field, problem in (exc.errors or {}).items())
            return spring_error(self.request, 400, f"{exc}: {details}" if details else str(exc))
        if isinstance(exc, NotFound):
            return spring_error(self.request, 404, str(exc))
        if isinstance(exc, exceptions.Throttled):
            wait = max(1, int(exc.wait or 1))
            response = spring_error(self.request, 429, f"too many requests: retry in {wait} seconds")
            response["Retry-After"] = str(wait)
            return response
        if isinstance(exc, RegistryUnavailable | CacheUnavailable | DatabaseError):
            return spring_error(self.request, 503, "the registry database is unavailable; retry shortly")
        return super().handle_exception(exc)


class EnvironmentView(SpringView):
    """GET /spring/{application}/{profile}[/{label}]: the property sources, most specific first."""

    def get(self, request, application: str, profile: str, label: str | None = None):
        revision = self.revision_checked(request, application, profile, label)
        position = request.user.position
        revision, layers = selectors.shared_layers(profile, application, position, revision)
        known = ANSWERS.get(position, (application, profile, label, revision))
        if known is not None:
            return HttpResponse(known, content_type="application/json")
        layers = [layer for layer in layers if layer.entries]
        secret = any(layer.secrets for layer in layers)
        if secret:
            if Scope.SECRETS_READ not in request.auth.scopes:
                raise SpringError(403, "this configuration holds secrets, which need the scope 'secrets:read'")
            entries = services.layers_reveal(layers=layers, actor=request_actor(request))
        else:
            entries = [layer.entries for layer in layers]
        sources = [
            {
                "name": f"config-registry:{layer.ref}" + (f"@{layer.version}" if layer.version else ""),
                "source": flat_source(values),
            }
            for layer, values in reversed(list(zip(layers, entries, strict=True)))
        ]
        answer = {
            "name": application,
            "profiles": [profile],
            "label": label or "main",
            "version": str(revision),
            "state": "",
            "propertySources": sources,
        }
        body = json.dumps(answer).encode()
        if not secret:  # a reveal is audited each time: never kept
            ANSWERS.put(position, (application, profile, label, revision), body)
        return HttpResponse(body, content_type="application/json")


class FileView(SpringView):
    """GET /spring/[{label}/]{application}-{profile}.{yml,yaml,properties,json}: the merged view as
    one file — the registry's resolution of the service (a key's value whole, as /api/v1/resolve gives it)."""

    def get(self, request, application: str, profile: str, ext: str, label: str | None = None):
        revision = self.revision_checked(request, application, profile, label)
        context = {"environment": profile, "service": application, "user": None}
        resolved = selectors.config_view(**context, position=request.user.position, revision=revision)
        if resolved.secrets:
            if Scope.SECRETS_READ not in request.auth.scopes:
                raise SpringError(403, "this configuration holds secrets, which need the scope 'secrets:read'")
            resolved = services.config_reveal(**context, actor=request_actor(request), revision=resolved.revision)
        content_type, render = FORMS[ext]
        response = HttpResponse(render(resolved.values), content_type=content_type)
        response["X-Config-Revision"] = str(resolved.revision)
        return response


def no_route(request, rest: str = ""):
    return spring_error(
        request,
        404,
        "Spring Cloud Config paths here: /spring/{application}/{profile}[/{label}] and "
        "/spring/[{label}/]{application}-{profile}.{yml,yaml,properties,json}",
    )


FILE = r"(?P<application>[^/]+)-(?P<profile>[^/-]+)\.(?P<ext>yml|yaml|properties|json)$"
urlpatterns = [
    re_path(r"^" + FILE, FileView.as_view()),
    re_path(r"^(?P<label>[^/]+)/" + FILE, FileView.as_view()),
    re_path(r"^(?P<application>[^/]+)/(?P<profile>[^/]+)/?$", EnvironmentView.as_view()),
    re_path(r"^(?P<application>[^/]+)/(?P<profile>[^/]+)/(?P<label>[^/]+)/?$", EnvironmentView.as_view()),
    re_path(r"^(?P<rest>.*)$", no_route),
]
