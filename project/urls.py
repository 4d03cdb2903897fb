"""URL map: admin, API, health. No views here."""

from django.contrib import admin
from django.urls import include, path

from config_registry import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("config_registry.api.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
