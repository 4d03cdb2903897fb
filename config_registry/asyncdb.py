"""Database calls from consumers: channels' database_sync_to_async, closing what the call opened.

With asgiref 3.13, a connection opened inside the call lives in the call's own context, where
channels' clean-up around it no longer sees it; so each call closes its connections itself
(CONN_MAX_AGE decides whether they really close), as a request does at its end.
"""

import functools
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.db import close_old_connections


def db_call(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return database_sync_to_async(run)
