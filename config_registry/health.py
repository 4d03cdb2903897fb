"""Liveness and readiness probes for load balancers and orchestrators, and the Prometheus metrics.

Under gunicorn and several uvicorn workers every process writes its values to PROMETHEUS_MULTIPROC_DIR
(`make serve-prod` sets it) and /metrics sums them (the library's multi-process mode); one process alone
reports its own. /metrics needs a service token with `metrics:read`, or an address in METRICS_ALLOWED_ADDRESSES.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from rest_framework import exceptions

from .api.authentication import ServiceTokenAuthentication
from .models import Scope


def healthz(request):
    """The process is alive; says nothing about its dependencies."""
    return JsonResponse({"status": "alive"})


def readyz(request):
    """Ready when the database and the channel layer both answer; 503 naming what does not."""
    problems = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        problems["database"] = f"unreachable: {error}"
    try:
        layer = get_channel_layer()
        async_to_sync(layer.send)("readyz.probe", {"type": "probe"})
        async_to_sync(layer.receive)("readyz.probe")
    except Exception as error:  # any failure of the layer's backend means "not ready"
        problems["channel_layer"] = f"unreachable: {error}"
    if problems:
        return JsonResponse({"status": "unavailable", "problems": problems}, status=503)
    return JsonResponse({"status": "ready"})


def metrics(request):
    allowed = request.META.get("REMOTE_ADDR") in settings.METRICS_ALLOWED_ADDRESSES
    if not allowed:
        refusal = _token_refusal(request)
        if refusal is not None:
            return refusal
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _token_refusal(request) -> JsonResponse | None:
    kind, _, raw = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if kind.lower() != "bearer" or not raw.strip():
        message = "send a service token with the scope 'metrics:read' (Authorization: Bearer …)"
        return JsonResponse({"error": "not_authenticated", "message": message}, status=401)
    try:
        _, token = ServiceTokenAuthentication().principal(raw.strip())
    except exceptions.AuthenticationFailed as error:
        return JsonResponse({"error": "not_authenticated", "message": str(error.detail)}, status=401)
    if Scope.METRICS_READ not in token.scopes:
        message = f"token {token.name!r} lacks the scope 'metrics:read'"
        return JsonResponse({"error": "permission_denied", "message": message}, status=403)
    return None
