"""Database calls from consumers: in a shared pool of threads, closing what the call opened.

Not thread-sensitive: channels runs each consumer in a context of its own, and a thread-sensitive
call would get a thread of its own per connection, held as long as the connection (measured: about
35 KB more per idle chat connection on PostgreSQL). Nothing here needs a particular thread: each call
uses its thread's database connection and closes it at the end (CONN_MAX_AGE decides whether it
really closes; with PostgreSQL it goes back to the pool), as a request does at its end. (With asgiref
3.13, a connection opened inside the call lives in the call's own context, where channels' clean-up
around it no longer sees it: hence the explicit close.)
"""

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections


def db_call(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)
