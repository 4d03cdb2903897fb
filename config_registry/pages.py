"""The landing page at /: what this server offers, with links and the version."""

from django.shortcuts import render

from . import __version__

PARTS = [
    ("Admin", "/admin/", "edit layers, publish, see history and diffs, roll back, tokens, the audit log"),
    ("API documentation", "/api/v1/docs", "the REST API (OpenAPI at /api/v1/schema), resolve first"),
    ("Vault KV v2", "/api/v1/docs/vault", "hvac and node-vault, unmodified, under /v1/"),
    ("Spring Cloud Config", "/api/v1/docs/spring", "Spring clients under /spring/"),
    ("OpenFeature (OFREP)", "/api/v1/docs/ofrep", "OpenFeature SDKs under /ofrep/v1/"),
    ("Chat", "/chat/", "the chat, authenticated with the registry's own keys"),
    ("Health", "/readyz", "readiness (database, channel layer); /healthz for liveness"),
]


def home(request):
    return render(request, "config_registry/home.html", {"parts": PARTS, "version": __version__})
