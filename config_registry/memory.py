"""What a process remembers between requests: values valid at one registry position (PositionMemo),
and the one hook that forgets them all (memos_clear(), also run on Django's setting_changed).

Imports nothing of the project: a position is any tuple, and each memo says which part of it its
values depend on (tokens: the epoch and token generation; resolutions: the epoch and revision).
"""

import contextlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from django.core.signals import setting_changed
from django.dispatch import receiver

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_memos: weakref.WeakSet = weakref.WeakSet()  # everything memos_clear() forgets


def forgotten_by_memos_clear(memory):
    """Register another kind of process memory (anything with clear()) with memos_clear()."""
    _memos.add(memory)
    return memory


def whole_position(position) -> Hashable:
    return tuple(position)


class PositionMemo(Generic[K, V]):
    """Values valid at one registry position; bounded (least recently used out first);
    thread-safe; forgotten when the position moves.

    `depends_on(position)` is what the values depend on (by default the whole position): a put at
    another one forgets the values of the previous one, and a get at another one finds nothing."""

    def __init__(self, name: str, max_entries: int, depends_on: Callable[[tuple], Hashable] = whole_position):
        self.name, self.max_entries, self._depends_on = name, max_entries, depends_on
        self._lock = threading.Lock()  # writers only
        self._state: tuple[Hashable, OrderedDict[K, V]] = (None, OrderedDict())
        _memos.add(self)

    def get(self, position, key: K) -> V | None:
        # No lock: hot paths read from many threads, and each step here is one dictionary operation,
        # atomic under the GIL; a value evicted meanwhile is a miss.
        at, values = self._state
        if at != self._depends_on(position):
            return None
        value = values.get(key)
        if value is not None:
            with contextlib.suppress(KeyError):
                values.move_to_end(key)
        return value

    def put(self, position, key: K, value: V) -> None:
        at = self._depends_on(position)
        with self._lock:
            if at != self._state[0]:
                self._state = (at, OrderedDict())
            values = self._state[1]
            values[key] = value
            values.move_to_end(key)
            if len(values) > self.max_entries:
                values.popitem(last=False)

    def __len__(self) -> int:
        return len(self._state[1])

    def clear(self) -> None:
        with self._lock:
            self._state = (None, OrderedDict())

    def __repr__(self) -> str:
        return f"<PositionMemo {self.name}: {len(self)} of {self.max_entries}>"


def memos_clear() -> None:
    """Forget every memo of this process (a new database behind it, or new settings)."""
    for memo in list(_memos):
        memo.clear()


@receiver(setting_changed)
def _settings_changed(**kwargs) -> None:
    # As Django's own caches (django.test.signals): what was remembered under other settings goes.
    memos_clear()
