"""WSGI entry point, for serving the HTTP API with WSGI workers (gunicorn) beside the ASGI server."""

import os

from django.core.wsgi import get_wsgi_application

# Django's convention (the one environment access outside project/settings.py that check E001 accepts).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

application = get_wsgi_application()
