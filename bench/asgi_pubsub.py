"""bench.asgi under bench.settings_pubsub (channels_redis's RedisPubSubChannelLayer)."""

import argparse

import django
from django.core.management.base import handle_default_options

handle_default_options(argparse.Namespace(settings="bench.settings_pubsub", pythonpath=None))
django.setup()

from bench.asgi import application  # noqa: E402

__all__ = ["application"]
