"""Vault KV version 2 under /v1/ (SPEC §9.1): the unmodified hvac (or node-vault) reads and writes the
registry. A thin adapter: the same selectors, services, scopes, limits, throttle and audit as
/api/v1/; errors translated here into Vault's shape ({"errors": [...]}, 403 for any token problem).

Mounts: `layers` (one secret per layer, its versions the layer's versions) and `config` (the resolved
view, read-only); `auth/token/lookup-self`; `sys/health`. Not supported: other engines, delete,
undelete and destroy (history is immutable), namespaces, response wrapping, `sys/internal/ui/mounts`.
"""

import json
import uuid
from datetime import UTC
from typing import Any

from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.urls import re_path
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.views import APIView

from .. import __version__, selectors, services
from ..api.authentication import ServicePrincipal, ServiceTokenAuthentication, request_actor
from ..api.permissions import context_refusal, may_reach_layer, require_layer
from ..exceptions import (
    ApprovalRequired,
    CacheUnavailable,
    InvalidInput,
    NotFound,
    PermissionRefused,
    RegistryUnavailable,
    VersionConflict,
)
from ..memory import PositionMemo
from ..models import Layer, Level, Scope
from ..usage import USAGE
from .negotiation import ProtocolForm

VERSION = f"{__version__}+config-registry"
IMMUTABLE = "history is immutable in Config Registry: publish a new version or roll back"
CAS_MISMATCH = "check-and-set parameter did not match the current version"
WRITE_ATTEMPTS = 3  # a write without cas that meets a concurrent one is based on the newer version
# Views without secrets, encoded, by (environment, service, user, revision): a revision's view never changes.
VIEWS: PositionMemo[tuple, str] = PositionMemo("vault views", 512, lambda position: position.epoch)
LEVEL_OF_SEGMENT = {
    "environment": Level.ENVIRONMENT,
    "service": Level.SERVICE,
    "group": Level.GROUP,
    "user": Level.USER,
}


class VaultError(Exception):
    def __init__(self, status: int, *messages: str):
        super().__init__(*messages)
        self.status, self.messages = status, list(messages)


def vault_answer(data: Any, status: int = 200) -> JsonResponse:
    """Vault's envelope around `data` (hvac reads `data`; the rest is what Vault always sends)."""
    body = {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": None,
    }
    return JsonResponse(body, status=status)


def vault_answer_encoded(data: str) -> HttpResponse:
    """vault_answer() around `data` already encoded as JSON (a kept view: no encoding per request)."""
    body = (
        f'{{"request_id": "{uuid.uuid4()}", "lease_id": "", "renewable": false, "lease_duration": 0, '
        f'"data": {data}, "wrap_info": null, "warnings": null, "auth": null}}'
    )
    return HttpResponse(body, content_type="application/json")


def vault_errors(status: int, messages: list[str], headers: dict | None = None) -> JsonResponse:
    return JsonResponse({"errors": messages}, status=status, headers=headers)


def _time(moment) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else ""


class VaultTokenAuthentication(ServiceTokenAuthentication):
    """`X-Vault-Token: <service token>`; any problem is Vault's 403 (hvac's is_authenticated() relies on it)."""

    def authenticate(self, request):
        raw = request.META.get("HTTP_X_VAULT_TOKEN", "").strip()
        if not raw:
            raise VaultError(403, "permission denied")
        return self.principal(raw)

    def authenticate_header(self, request):
        return None


class VaultView(APIView):
    """A Vault endpoint: token from X-Vault-Token, errors in Vault's shape. `read_scope` and
    `write_scope` name what GET/LIST and POST/PUT need."""

    content_negotiation_class = ProtocolForm
    authentication_classes = [VaultTokenAuthentication]
    permission_classes: list = []
    http_method_names = ["get", "post", "put", "delete", "list", "head", "patch"]
    read_scope = Scope.CONFIG_READ
    write_scope = Scope.CONFIG_WRITE

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not isinstance(request.user, ServicePrincipal):
            raise VaultError(403, "permission denied")
        writes = request.method in ("POST", "PUT", "PATCH", "DELETE") and not self.listing()
        scope = self.write_scope if writes else self.read_scope
        if scope and scope not in request.auth.scopes:
            raise VaultError(403, f"permission denied: token {request.auth.name!r} lacks the scope '{scope}'")

    def listing(self) -> bool:
        """LIST, or GET with ?list=true (how clients without custom verbs list)."""
        return self.request.method == "LIST" or self.request.query_params.get("list") in ("true", "1")

    def handle_exception(self, exc):
        return vault_exception(exc)

    def reveals(self) -> bool:
        return Scope.SECRETS_READ in self.request.auth.scopes

    def body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise VaultError(400, "failed to parse JSON input: the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise VaultError(400, "failed to parse JSON input: the body must be a JSON object")
        return body


def vault_exception(exc: Exception) -> JsonResponse:
    """The registry's errors in Vault's shape."""
    if isinstance(exc, VaultError):
        return vault_errors(exc.status, exc.messages)
    if isinstance(exc, NotFound):
        return vault_errors(404, [])
    if isinstance(exc, VersionConflict):
        return vault_errors(400, [CAS_MISMATCH])
    if isinstance(exc, InvalidInput):
        details = [f"{field}: {problem}" for field, problem in (exc.errors or {}).items()]
        return vault_errors(400, [str(exc), *details])
    if isinstance(exc, ApprovalRequired):  # a Vault client cannot follow a change request: say where to go
        return vault_errors(403, [str(exc)])
    if isinstance(exc, PermissionRefused | exceptions.PermissionDenied):
        return vault_errors(403, [f"permission denied: {exc}"])
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return vault_errors(403, ["permission denied"])
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, int(exc.wait or 1))
        return vault_errors(429, [f"too many requests: retry in {wait} seconds"], {"Retry-After": str(wait)})
    if isinstance(exc, RegistryUnavailable | CacheUnavailable | DatabaseError):
        return vault_errors(503, ["the registry database is unavailable; retry shortly"])
    if isinstance(exc, exceptions.MethodNotAllowed):
        return vault_errors(405, [f"unsupported operation: {exc.detail}"])
    raise exc


# The layers mount -----------------------------------------------------------------------------


def layer_ref(path: str) -> str:
    """`global`, `environment/<name>`, … → the layer's ref; VaultError 404 for anything else."""
    parts = [part for part in path.split("/") if part]
    if parts == ["global"]:
        return "global"
    if len(parts) == 2 and parts[0] in LEVEL_OF_SEGMENT:
        return f"{parts[0]}:{parts[1]}"
    raise VaultError(404)


class LayerDataView(VaultView):
    def get(self, request, path):
        ref = layer_ref(path)
        require_layer(request.auth, ref)
        layer = selectors.layer_get(ref)
        number = _version_param(request, layer)
        if number == 0:
            raise VaultError(404)
        version = selectors.version_get(layer, number)
        entries, secrets = selectors.version_entries(layer, number)
        if secrets:
            if not self.reveals():
                raise VaultError(
                    403,
                    f"permission denied: version {number} of {ref} holds secrets, which need the scope 'secrets:read'",
                )
            entries, secrets = services.version_reveal(layer=layer, number=number, actor=request_actor(request))
        return vault_answer({"data": entries, "metadata": _version_metadata(version)})

    def post(self, request, path):
        ref = layer_ref(path)
        require_layer(request.auth, ref)
        body = self.body()
        data, options = body.get("data"), body.get("options") or {}
        if not isinstance(data, dict) or not isinstance(options, dict):
            raise VaultError(400, 'the body must be {"data": {key: value, …}, "options": {"cas": n}}')
        cas = options.get("cas")
        if cas is not None and (not isinstance(cas, int) or isinstance(cas, bool) or cas < 0):
            raise VaultError(400, "options.cas must be a whole number ≥ 0 (the version the write is based on)")
        actor = request_actor(request)
        for attempt in range(WRITE_ATTEMPTS):
            layer = _layer_to_write(ref, actor=actor)
            base = layer.current_version if cas is None else cas
            current, _ = selectors.version_entries(layer, layer.current_version)
            try:
                version = services.version_publish(
                    layer=layer,
                    base_version=base,
                    set_=data,
                    unset=[key for key in current if key not in data],
                    secrets=list(data),  # what a Vault client writes is a secret
                    comment="written through the Vault KV v2 API",
                    actor=actor,
                )
            except VersionConflict:
                if cas is not None or attempt == WRITE_ATTEMPTS - 1:
                    raise
                continue  # without cas the write is based on whatever is current (Vault's way)
            return vault_answer(_version_metadata(version))

    put = post

    def delete(self, request, path):
        raise VaultError(400, IMMUTABLE)


def _layer_to_write(ref: str, *, actor) -> Layer:
    """The layer, created first when it is a missing global/environment/service one (as Vault creates
    a secret at its first write); group and user layers need their group or user (layer_create says so)."""
    try:
        return selectors.layer_get(ref)
    except NotFound:
        return services.layer_create(ref=ref, actor=actor)


def _version_param(request, layer: Layer) -> int:
    raw = request.query_params.get("version")
    if raw in (None, "", "0"):
        return layer.current_version
    if not raw.isdigit():
        raise VaultError(400, "version must be a whole number")
    return int(raw)


def _version_metadata(version) -> dict:
    return {
        "version": version.number,
        "created_time": _time(version.created_at),
        "deletion_time": "",
        "destroyed": False,
        "custom_metadata": None,
    }


class LayerMetadataView(VaultView):
    def get(self, request, path=""):
        if self.listing():
            return self.list(request, path)
        ref = layer_ref(path)
        require_layer(request.auth, ref)
        layer = selectors.layer_get(ref)
        versions = list(layer.versions.order_by("number"))
        if not versions:
            raise VaultError(404)
        return vault_answer(
            {
                "current_version": layer.current_version,
                "oldest_version": versions[0].number,
                "created_time": _time(versions[0].created_at),
                "updated_time": _time(versions[-1].created_at),
                "max_versions": 0,
                "cas_required": False,
                "delete_version_after": "0s",
                "custom_metadata": {"description": layer.description},
                "versions": {
                    str(v.number): {"created_time": _time(v.created_at), "deletion_time": "", "destroyed": False}
                    for v in versions
                },
            }
        )

    def list(self, request, path=""):
        parts = [part for part in path.split("/") if part]
        layers = Layer.objects.order_by("level", "name")
        visible = [layer for layer in layers if may_reach_layer(request.auth, layer.ref)]
        if not parts:
            keys = sorted({"global" if layer.level == Level.GLOBAL else f"{layer.level}/" for layer in visible})
        elif len(parts) == 1 and parts[0] in LEVEL_OF_SEGMENT:
            keys = [layer.name for layer in visible if layer.level == LEVEL_OF_SEGMENT[parts[0]]]
        else:
            keys = []
        return _listing(keys)

    def post(self, request, path=""):
        raise VaultError(400, f"metadata cannot be written: {IMMUTABLE}")

    put = patch = delete = post


def _listing(keys: list[str]) -> JsonResponse:
    if not keys:  # Vault's answer to a LIST of nothing
        raise VaultError(404)
    return vault_answer({"keys": keys})


class ImmutableView(VaultView):
    """delete/, undelete/ and destroy/ of the layers mount."""

    def post(self, request, path=""):
        raise VaultError(400, IMMUTABLE)

    get = put = delete = list = post


# The config mount: the resolved view, read-only ------------------------------------------------


class ConfigDataView(VaultView):
    def get(self, request, path):
        parts = [part for part in path.split("/") if part]
        if len(parts) not in (2, 3):
            raise VaultError(404)
        environment, service, user = parts[0], parts[1], parts[2] if len(parts) == 3 else None
        refusal = context_refusal(request.auth, environment=environment, service=service)
        if refusal:
            raise VaultError(403, f"permission denied: {refusal}")
        revision = None
        if request.query_params.get("version") not in (None, "", "0"):
            raw = request.query_params["version"]
            if not raw.isdigit():
                raise VaultError(400, "version must be a whole number (a revision of the registry)")
            revision = int(raw)
        context = {"environment": environment, "service": service, "user": user}
        resolved = selectors.config_view(**context, position=request.user.position, revision=revision)
        USAGE.served(request.auth.pk, environment, service, user)
        if not resolved.secrets:
            view = (environment, service, user, resolved.revision)
            data = VIEWS.get(request.user.position, view)
            if data is None:
                data = json.dumps(_view_data(resolved))
                VIEWS.put(request.user.position, view, data)
            return vault_answer_encoded(data)
        if not self.reveals():
            raise VaultError(403, "permission denied: this view holds secrets: reading it needs 'secrets:read'")
        resolved = services.config_reveal(**context, actor=request_actor(request), revision=resolved.revision)
        return vault_answer(_view_data(resolved))

    def post(self, request, path):
        raise VaultError(
            405, "the config mount is the resolved view and is read-only: write to the layers mount (layers/data/…)"
        )

    put = patch = delete = post


def _view_data(resolved) -> dict:
    metadata = {"version": resolved.revision, "created_time": "", "deletion_time": "", "destroyed": False}
    return {"data": resolved.values, "metadata": {**metadata, "custom_metadata": None}}


class ConfigMetadataView(VaultView):
    def get(self, request, path=""):
        if not self.listing():
            raise VaultError(404)
        return self.list(request, path)

    def list(self, request, path=""):
        parts = [part for part in path.split("/") if part]
        token = request.auth
        if not parts:
            names = Layer.objects.filter(level=Level.ENVIRONMENT).values_list("name", flat=True)
            keys = [f"{name}/" for name in sorted(names) if not context_refusal(token, environment=name)]
        elif len(parts) == 1:
            names = Layer.objects.filter(level=Level.SERVICE).values_list("name", flat=True)
            keys = [
                f"{name}/" for name in sorted(names) if not context_refusal(token, environment=parts[0], service=name)
            ]
        else:
            keys = []
        return _listing(keys)

    def post(self, request, path=""):
        raise VaultError(405, "the config mount is read-only: write to the layers mount (layers/data/…)")

    put = patch = delete = post


# Tokens and health ----------------------------------------------------------------------------


class LookupSelfView(VaultView):
    def get(self, request):
        token = request.auth
        ttl = int((token.expires_at - timezone.now()).total_seconds()) if token.expires_at else 0
        return vault_answer(
            {
                "display_name": f"token-{token.name}",
                "policies": list(token.scopes),
                "meta": {"environments": ",".join(token.environments), "services": ",".join(token.services)},
                "expire_time": _time(token.expires_at) or None,
                "ttl": max(ttl, 0),
                "renewable": False,
                "type": "service",
            }
        )


def sys_health(request):
    """GET/HEAD /v1/sys/health: no token needed (as Vault); 503 "sealed" while the database is away."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        sealed = False
    except DatabaseError:
        sealed = True
    body = {
        "initialized": True,
        "sealed": sealed,
        "standby": False,
        "version": VERSION,
        "server_time_utc": int(timezone.now().timestamp()),
    }
    response = JsonResponse(body, status=503 if sealed else 200)
    if request.method == "HEAD":
        return HttpResponse(status=response.status_code, content_type="application/json")
    return response


def no_route(request, rest=""):
    return vault_errors(
        404,
        [
            f"no handler for route {rest!r}: Config Registry serves the KV v2 mounts 'layers' and 'config', "
            "auth/token/lookup-self and sys/health"
        ],
    )


PATH = r"(?P<path>.*?)/?$"
urlpatterns = [
    re_path(r"^layers/data/" + PATH, LayerDataView.as_view()),
    re_path(r"^layers/metadata/?" + PATH, LayerMetadataView.as_view()),
    re_path(r"^layers/(?:delete|undelete|destroy)/" + PATH, ImmutableView.as_view()),
    re_path(r"^config/data/" + PATH, ConfigDataView.as_view()),
    re_path(r"^config/metadata/?" + PATH, ConfigMetadataView.as_view()),
    re_path(r"^auth/token/lookup-self/?$", LookupSelfView.as_view()),
    re_path(r"^sys/health/?$", sys_health),
    re_path(r"^(?P<rest>.*)$", no_route),
]
