"""Benchmark settings: the product's settings plus a bare DRF view and django-constance."""

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS

ROOT_URLCONF = "bench.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "constance"]
CONSTANCE_BACKEND = "constance.backends.database.DatabaseBackend"
CONSTANCE_CONFIG = {f"SETTING_{i}": (i, f"benchmark setting {i}") for i in range(50)}
