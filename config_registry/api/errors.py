"""One JSON error shape for the whole API: {"error": code, "message": text[, "errors": {...}]}."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, DataError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..exceptions import (
    CacheUnavailable,
    ChangeConflict,
    InvalidInput,
    NotFound,
    PermissionRefused,
    RegistryUnavailable,
    SecretUndecryptable,
    SecurityConfigMissing,
    VersionConflict,
)

logger = logging.getLogger(__name__)


def _flatten(detail, prefix: str = "") -> dict[str, str]:
    if isinstance(detail, dict):
        flat = {}
        for key, value in detail.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(detail, list):
        return {prefix or "request": "; ".join(str(item) for item in detail)}
    return {prefix or "request": str(detail)}


def _answer(code: str, message: str, http_status: int, errors: dict | None = None, **extra) -> Response:
    body = {"error": code, "message": message, **extra}
    if errors:
        body["errors"] = errors
    return Response(body, status=http_status)


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return _answer(
            "too_large",
            f"the request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes, the limit for one request",
            413,
        )
    if isinstance(exc, DataError):  # e.g. text the database cannot store: the caller's input, not an outage
        return _answer(
            "invalid_input",
            "the request holds a value the database cannot store (NUL characters, or a number out of range)",
            400,
        )
    if isinstance(exc, InvalidInput):
        return _answer("invalid_input", str(exc), 400, exc.errors)
    if isinstance(exc, NotFound):
        return _answer("not_found", str(exc), 404)
    if isinstance(exc, PermissionRefused):
        return _answer("permission_denied", str(exc), 403)
    if isinstance(exc, ChangeConflict):
        return _answer("change_conflict", str(exc), 409, state=exc.state, stale=exc.stale)
    if isinstance(exc, VersionConflict):
        return _answer("version_conflict", str(exc), 409, current_version=exc.current)
    if isinstance(exc, SecurityConfigMissing):
        return _answer("not_configured", str(exc), 503)
    if isinstance(exc, (RegistryUnavailable, CacheUnavailable, DatabaseError)):
        logger.warning("registry unavailable: %s", exc)
        return _answer("unavailable", "the registry database is unavailable; retry shortly", 503)
    if isinstance(exc, SecretUndecryptable):
        logger.error("%s", exc)
        return _answer("secret_undecryptable", f"{exc}: check CONFIG_REGISTRY_KEYS", 500)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        message = "invalid request: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
        response.data = {"error": "invalid_input", "message": message, "errors": errors}
    elif isinstance(exc, exceptions.Throttled):
        response.data = {"error": "throttled", "message": f"too many requests: retry in {int(exc.wait or 1)} seconds"}
    else:
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = {"error": code if isinstance(code, str) else "error", "message": str(exc.detail)}
    return response


@csrf_exempt  # it changes nothing: a POST to an unknown URL gets this JSON 404, not CSRF's HTML 403
def json_not_found(request, *args, **kwargs):
    """Unknown URLs under /api/ answer JSON too."""
    return JsonResponse(
        {"error": "not_found", "message": f"no API endpoint at {request.path}; see /api/v1/docs"},
        status=status.HTTP_404_NOT_FOUND,
    )
