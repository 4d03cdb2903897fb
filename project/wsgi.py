"""WSGI entry point, for serving the HTTP API with WSGI workers (gunicorn) beside the ASGI server."""

import argparse

from django.core.management.base import handle_default_options
from django.core.wsgi import get_wsgi_application

# Django's own way to name the settings module (as `--settings` does); the environment is
# read by project/settings.py alone.
handle_default_options(argparse.Namespace(settings="project.settings", pythonpath=None))

application = get_wsgi_application()
