"""The product's ASGI application under the benchmark settings."""

import argparse

import django
from django.core.management.base import handle_default_options

handle_default_options(argparse.Namespace(settings="bench.settings", pythonpath=None))
django.setup()

from project.asgi import application  # noqa: E402,F401
