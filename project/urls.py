"""URL map: admin and health. No views here."""

from django.contrib import admin
from django.urls import path

from config_registry import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
