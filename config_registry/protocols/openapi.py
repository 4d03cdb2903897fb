"""OpenAPI documents of the drop-in protocols (SPEC §9), one per surface, served beside /api/v1/schema
and linked from /api/v1/docs. The views stay thin: what each operation documents is attached here."""

from types import SimpleNamespace

from django.urls import include, path
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import ofrep, spring, vault

STANDARD_METHODS = {"GET", "PUT", "POST", "DELETE", "PATCH"}


def api_paths_only(endpoints):
    """The native schema (/api/v1/schema) documents /api/ only: each protocol has its own document."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]


def protocol_endpoints(endpoints):
    """Paths as clients write them (no optional trailing slash); no LIST verb in OpenAPI: Vault's
    listings are documented as GET ?list=true."""
    return [
        (path.removesuffix("/") if path.endswith("}/") or path.count("/") > 2 else path, regex, method, view)
        for path, regex, method, view in endpoints
        if method in STANDARD_METHODS
    ]


def labelled_operations(result, **kwargs):
    """Spring's routes with a label are the same views as without: their operations named apart."""
    for route, operations in result["paths"].items():
        if "{label}" in route:
            for operation in operations.values():
                operation["operationId"] += "_at_label"
    return result


class VaultTokenScheme(OpenApiAuthenticationExtension):
    target_class = vault.VaultTokenAuthentication
    name = "vaultToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-Vault-Token", "description": "a service token"}


class SpringTokenScheme(OpenApiAuthenticationExtension):
    target_class = spring.SpringTokenAuthentication
    name = ["springBasic", "springBearer", "springConfigToken"]

    def get_security_requirement(self, auto_schema):
        return [{name: []} for name in self.name]  # any one of them

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "basic", "description": "any user name, the service token as the password"},
            {"type": "http", "scheme": "bearer", "description": "a service token"},
            {"type": "apiKey", "in": "header", "name": "X-Config-Token", "description": "a service token"},
        ]


class OfrepTokenScheme(OpenApiAuthenticationExtension):
    target_class = ofrep.OfrepTokenAuthentication
    name = ["ofrepBearer", "ofrepApiKey"]

    def get_security_requirement(self, auto_schema):
        return [{name: []} for name in self.name]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "description": "a service token"},
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "a service token"},
        ]


def _answer(description: str, example: dict | None = None, media: OpenApiTypes = OpenApiTypes.OBJECT):
    examples = [OpenApiExample("example", value=example, response_only=True)] if example is not None else None
    return OpenApiResponse(response=media, description=description, examples=examples)


ENVELOPE = {"request_id": "…", "lease_id": "", "renewable": False, "lease_duration": 0, "wrap_info": None}
VAULT_ERRORS = {
    400: _answer("bad input or a stale `cas`", {"errors": [vault.CAS_MISMATCH]}),
    403: _answer("missing, unknown, expired or revoked token; a scope or a limit", {"errors": ["permission denied"]}),
    404: _answer("no such path (or nothing to list)", {"errors": []}),
    429: _answer("throttled: `Retry-After` in seconds", {"errors": ["too many requests: retry in 3 seconds"]}),
    503: _answer("the registry database is unavailable", {"errors": ["…retry shortly"]}),
}
VAULT_PATH = OpenApiParameter(
    "path", str, OpenApiParameter.PATH, description="`global`, `environment/<name>`, `service/<name>`, …"
)
VERSION = OpenApiParameter("version", int, description="a past version (0 or absent: the current one)")
LIST = OpenApiParameter("list", str, enum=["true", "1"], description="list instead of read (Vault's `LIST` verb)")
NOT_HERE = extend_schema(exclude=True)  # unsupported: listed in the document's description instead
VAULT_WRITE = extend_schema(
    summary="Write a new version (the whole secret)",
    description="The new version's entries are exactly `data` (absent keys are unset), published with the "
    "registry's schema checks, audit and revision. `options.cas`: the version it is based on. Values written "
    "here are stored as secrets. POST and PUT alike. Needs `config:write`.",
    parameters=[VAULT_PATH],
    request={"application/json": OpenApiTypes.OBJECT},
    examples=[OpenApiExample("write", value={"data": {"log.level": "warn"}, "options": {"cas": 1}})],
    responses={200: _answer("the new version's metadata", {**ENVELOPE, "data": {"version": 2}}), **VAULT_ERRORS},
)

extend_schema_view(
    get=extend_schema(
        operation_id="layers_read",
        summary="Read a layer's version",
        description="`data.data` is the version's entries. Needs `config:read`, and `secrets:read` when the "
        "version holds a secret (the reveal is audited).",
        parameters=[VAULT_PATH, VERSION],
        responses={200: _answer("the version", {**ENVELOPE, "data": {"data": {"log.level": "warn"}}}), **VAULT_ERRORS},
    ),
    post=VAULT_WRITE,
    put=VAULT_WRITE,  # the same function as post
    delete=NOT_HERE,
)(vault.LayerDataView)
extend_schema_view(
    get=extend_schema(
        operation_id="layers_metadata",
        summary="A layer's metadata and versions, or a listing (?list=true)",
        parameters=[VAULT_PATH, LIST],
        responses={200: _answer("metadata, or `data.keys`", {**ENVELOPE, "data": {"keys": ["a/"]}}), **VAULT_ERRORS},
    ),
    post=NOT_HERE,
)(vault.LayerMetadataView)
extend_schema_view(post=NOT_HERE)(vault.ImmutableView)
extend_schema_view(
    get=extend_schema(
        operation_id="config_read",
        summary="The resolved view of a context",
        description="`<environment>/<service>[/<user>]`. `?version=R`: the view as it was at revision R. "
        "`data.metadata.version` is the revision. `secrets:read` needed when the view holds a secret.",
        parameters=[
            OpenApiParameter("path", str, OpenApiParameter.PATH, description="`<environment>/<service>[/<user>]`"),
            OpenApiParameter("version", int, description="a past revision of the registry"),
        ],
        responses={200: _answer("the view", {**ENVELOPE, "data": {"data": {"chat.max": 3}}}), **VAULT_ERRORS},
    ),
    post=NOT_HERE,
)(vault.ConfigDataView)
extend_schema_view(
    get=extend_schema(
        operation_id="config_list",
        summary="List environments, or an environment's services (?list=true)",
        parameters=[LIST],
        responses={200: _answer("`data.keys`"), **VAULT_ERRORS},
    ),
    post=NOT_HERE,
)(vault.ConfigMetadataView)
extend_schema_view(
    get=extend_schema(
        operation_id="token_lookup_self",
        summary="The token's own description",
        responses={200: _answer("`data.policies` are its scopes, `data.meta` its limits"), **VAULT_ERRORS},
    )
)(vault.LookupSelfView)

SPRING_ERRORS = {
    400: _answer("several profiles, or a bad name"),
    401: _answer("no or a bad token (with `WWW-Authenticate: Basic`)"),
    403: _answer("a scope, a limit, or secrets without `secrets:read`"),
    404: _answer("a label that is not a revision"),
    429: _answer("throttled: `Retry-After` in seconds"),
}
extend_schema_view(
    get=extend_schema(
        operation_id="environment",
        tags=["property sources"],
        summary="A service's property sources",
        description="application = service, profile = environment, label = a revision (absent, main, master, "
        "latest: now). Property sources most specific first (index 0 wins), flattened the Spring way.",
        responses={
            200: _answer(
                "Spring's Environment",
                {
                    "name": "chat",
                    "profiles": ["production"],
                    "label": "main",
                    "version": "42",
                    "state": "",
                    "propertySources": [{"name": "config-registry:service:chat@3", "source": {"chat.max": 7}}],
                },
            ),
            **SPRING_ERRORS,
        },
    )
)(spring.EnvironmentView)
extend_schema_view(
    get=extend_schema(
        operation_id="file",
        tags=["files"],
        parameters=[OpenApiParameter("ext", str, OpenApiParameter.PATH, enum=sorted(spring.FORMS))],
        summary="The merged view as one file",
        description="`.yml`/`.yaml`/`.properties` as text/plain, `.json` as JSON; the name splits at the last hyphen.",
        responses={(200, "text/plain"): _answer("the file", media=OpenApiTypes.STR), **SPRING_ERRORS},
    )
)(spring.FileView)

OFREP_CONTEXT = {"context": {"targetingKey": "alice", "environment": "production", "service": "chat"}}
OFREP_ERRORS = {
    400: _answer("`PARSE_ERROR`, `INVALID_CONTEXT`", {"key": "k", "errorCode": "INVALID_CONTEXT", "errorDetails": "…"}),
    401: _answer("no or a bad token"),
    403: _answer("a scope or a limit"),
    404: _answer("`FLAG_NOT_FOUND` (also for secrets, which are not served here)"),
    429: _answer("throttled: `Retry-After` in whole seconds"),
}
extend_schema_view(
    post=extend_schema(
        operation_id="evaluate_flag",
        tags=["evaluation"],
        summary="Evaluate one flag",
        description="`reason` STATIC (defaults, global, environment, service) or TARGETING_MATCH (group, user); "
        "`variant` the winning layer and version. Keys with `/` arrive raw or as `%2F`.",
        request={"application/json": OpenApiTypes.OBJECT},
        examples=[OpenApiExample("context", value=OFREP_CONTEXT, request_only=True)],
        responses={
            200: _answer(
                "the evaluation",
                {
                    "key": "feature.dark_mode",
                    "value": True,
                    "reason": "TARGETING_MATCH",
                    "variant": "group:beta@1",
                    "metadata": {"layer": "group:beta", "version": 1, "revision": 42},
                },
            ),
            **OFREP_ERRORS,
        },
    )
)(ofrep.FlagView)
extend_schema_view(
    post=extend_schema(
        operation_id="evaluate_flags",
        tags=["evaluation"],
        summary="Evaluate every flag (non-secret key) of a context",
        description="With an `ETag` for (context, revision): `If-None-Match` answers 304.",
        request={"application/json": OpenApiTypes.OBJECT},
        examples=[OpenApiExample("context", value=OFREP_CONTEXT, request_only=True)],
        parameters=[OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER)],
        responses={200: _answer('`{"flags": […]}`'), 304: _answer("not modified"), **OFREP_ERRORS},
    )
)(ofrep.BulkView)

SURFACES = {
    "vault": (
        "Config Registry: Vault KV v2",
        [path("v1/", include(vault))],
        "Vault's KV version 2 over the registry (SPEC §9.1): the read/write `layers` mount (one secret per layer) "
        "and the read-only resolved `config` mount, `auth/token/lookup-self`, `sys/health` (GET, HEAD; no token). "
        "Lists are Vault's `LIST` verb or `GET ?list=true`.\n\n**Not supported**: other secrets engines, delete, "
        "undelete, destroy and metadata writes (history is immutable: publish or roll back), namespaces, response "
        "wrapping, leases, the `vault` CLI's `sys/internal/ui/mounts` preflight.",
    ),
    "spring": (
        "Config Registry: Spring Cloud Config",
        [path("spring/", include(spring))],
        "A Spring Cloud Config server over the registry (SPEC §9.2).\n\n**Not supported**: a user dimension "
        "(users are the registry's), several profiles at once, `/encrypt` and `/decrypt`, plain-text resources "
        "(`/{application}/{profile}/{label}/{path}`), git labels (labels are revisions).",
    ),
    "ofrep": (
        "Config Registry: OpenFeature Remote Evaluation (OFREP)",
        [path("ofrep/v1/", include(ofrep))],
        "OFREP over the registry (SPEC §9.3): every non-secret key is a flag.\n\n**Not supported**: event "
        "streams and change notifications (poll the bulk evaluation with its ETag, or watch `/ws/config/`), "
        "secrets, fractional rollouts (targeting is the registry's groups and users).",
    ),
}


def schema_urls() -> list:
    """/api/v1/schema/{vault,spring,ofrep} and their Swagger UIs at /api/v1/docs/…"""
    urls = []
    for name, (title, patterns, description) in SURFACES.items():
        schema = SpectacularAPIView.as_view(
            urlconf=SimpleNamespace(urlpatterns=patterns),
            custom_settings={
                "TITLE": title,
                "DESCRIPTION": description,
                "PREPROCESSING_HOOKS": ["config_registry.protocols.openapi.protocol_endpoints"],
                "POSTPROCESSING_HOOKS": [
                    "drf_spectacular.hooks.postprocess_schema_enums",
                    "config_registry.protocols.openapi.labelled_operations",
                ],
            },
        )
        docs = SpectacularSwaggerView.as_view(url_name=f"api-schema-{name}")
        urls += [
            path(f"schema/{name}", schema, name=f"api-schema-{name}"),
            path(f"docs/{name}", docs, name=f"api-docs-{name}"),
        ]
    return urls
