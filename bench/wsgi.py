"""The product's WSGI application under the benchmark settings."""

import argparse

import django
from django.core.management.base import handle_default_options

handle_default_options(argparse.Namespace(settings="bench.settings", pythonpath=None))
django.setup()

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
