"""Where the registry is (owned by config_registry.state) and one consistent snapshot to read it in."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from ..state import Position, database_position, registry_position, registry_position_known, registry_revision

__all__ = [
    "Position",
    "consistent_read",
    "database_position",
    "registry_position",
    "registry_position_known",
    "registry_revision",
]


@contextmanager
def consistent_read() -> Iterator[None]:
    """On PostgreSQL, one REPEATABLE READ snapshot for every query inside. Elsewhere (and inside a
    caller's transaction) the revision filter of resolution's snapshots still keeps versions consistent."""
    if connection.in_atomic_block or connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield
