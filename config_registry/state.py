"""The registry's position, owned here: the singleton state row and its lock, the position a
process has seen, and the one announcement after a commit that moved it, registry_moved(), sent
through the broadcaster chosen in settings.REGISTRY_BROADCASTER (config_registry.live.broadcast).

Imports only models (the broadcaster is named in settings), so that every other module can import it.
"""

import threading
import time
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils.module_loading import import_string

from .models import RegistryState


class Position(NamedTuple):
    """Where the registry is: caches of resolved values are keyed by (epoch, revision), and
    in-memory tokens are trusted only at the token generation they were read at."""

    epoch: str
    revision: int
    token_generation: int


def _position_sql() -> str:
    table = connection.ops.quote_name(RegistryState._meta.db_table)
    return f"SELECT epoch, revision, token_generation FROM {table} WHERE id = 1"


_observed: tuple[Position, float] | None = None  # the newest position this process has seen, and when


def registry_position(max_age: float = 0.0) -> Position:
    """The registry's position now; or, with `max_age` seconds, the newest one this process has
    seen (read, or announced by the broadcaster) if that is recent enough. "Now" is what the
    position feed has pushed to this process when it has it (no round trip), else a database read."""
    observed = _observed
    if max_age and observed is not None and time.monotonic() - observed[1] <= max_age:
        return observed[0]
    # Inside a transaction, read what that transaction sees (it may itself have moved the position).
    outside_transaction = not connection.in_atomic_block
    position = broadcaster().pushed() if outside_transaction else None
    if position is None:
        position = database_position()
        if outside_transaction:  # committed: what is pushed from here on follows it
            broadcaster().confirmed(position)
    position_observed(position)
    return position


def registry_position_known(max_age: float) -> Position | None:
    """registry_position(max_age) if this process knows it without any I/O (safe on an event
    loop): seen within `max_age` seconds, or on the position feed. None otherwise."""
    observed = _observed
    if observed is not None and time.monotonic() - observed[1] <= max_age:
        return observed[0]
    position = broadcaster().pushed(may_block=False)
    if position is not None:
        position_observed(position)
    return position


def database_position() -> Position:
    # Plain SQL: compiling an ORM query would be most of the cost of this read.
    with connection.cursor() as cursor:
        cursor.execute(_position_sql())
        row = cursor.fetchone()
    return Position(str(row[0]).replace("-", ""), row[1], row[2]) if row else Position("", 0, 0)


def _position_parse(text: str) -> Position:
    epoch, revision, generation = text.split(":")
    return Position(epoch, int(revision), int(generation))


_broadcaster = None
_broadcaster_lock = threading.Lock()


def broadcaster():
    """This process's broadcaster (settings.REGISTRY_BROADCASTER: Redis pub/sub, or in-process)."""
    global _broadcaster
    if _broadcaster is None:
        with _broadcaster_lock:  # one per process, whichever thread asks first
            if _broadcaster is None:
                options = dict(settings.REGISTRY_BROADCASTER)
                _broadcaster = import_string(options.pop("BACKEND"))(_position_parse, **options)
    return _broadcaster


def _committed() -> None:
    registry_moved(database_position())


def registry_moved(position: Position) -> None:
    """After commit: tell every process where the registry is now (this one first), once per
    position (a transaction that took the lock twice, or moved nothing, asks twice or in vain)."""
    global _announced
    position_observed(position)
    with _announced_lock:
        if position == _announced:
            return
        _announced = position
    broadcaster().announce(position)


_announced: Position | None = None  # the last position this process announced
_announced_lock = threading.Lock()


def position_observed(position: Position) -> None:
    """Remember a position seen now, unless this process already knows a newer one."""
    global _observed
    current = _observed
    if current is None or current[0].epoch != position.epoch or position >= current[0]:
        _observed = (position, time.monotonic())


def registry_revision() -> int:
    return registry_position().revision


def locked_state() -> RegistryState:
    """The registry's singleton row, locked until the current transaction ends; whatever moved is
    announced to every process once it commits."""
    state, _ = RegistryState.objects.select_for_update().get_or_create(pk=1)
    transaction.on_commit(_committed)
    return state


def state_clear() -> None:
    """Forget the positions this process has seen and announced (tests: a new database)."""
    global _observed, _announced
    _observed, _announced = None, None
    if _broadcaster is not None:
        _broadcaster.reset()


def broadcaster_reset() -> None:
    """A new broadcaster at next use (settings.REGISTRY_BROADCASTER changed)."""
    global _broadcaster
    state_clear()
    _broadcaster = None
