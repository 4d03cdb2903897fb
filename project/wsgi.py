"""WSGI entry point, for serving the HTTP API with WSGI workers (gunicorn) beside the ASGI server."""

import gc
import os

from django.core.wsgi import get_wsgi_application

# Django's convention (the one environment access outside project/settings.py that check E001 accepts).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

application = get_wsgi_application()

# Everything loaded by now lives as long as the process: out of the collector's sight, so that the
# collections a big resolution triggers do not walk all of Django each time (a 4,000-key cold
# resolve grew 2.3× for 2× keys, 1.8× with this: bench/scale.py).
gc.freeze()
