"""Liveness and readiness probes for load balancers and orchestrators."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DatabaseError, connection
from django.http import JsonResponse


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
