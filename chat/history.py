"""Room histories kept in process memory, so that joining a room needs no database read.

A process keeps the last messages of a room while it has members there: every new message of the
room reaches those members through the room's channel-layer group, and so this record too. A record
is trusted only when its database snapshot was read while a member was already in the group (so
that no message can fall between the snapshot and the group), at the registry revision it was read
at (a deleted user takes their messages along and moves the revision), and for at most TRUST_SECONDS
(a message stored but never relayed, when the channel layer failed, is missing for no longer).
Everything here runs on the event loop; nothing does I/O.
"""

import json
import time
from dataclasses import dataclass

from .selectors import HISTORY_SIZE

TRUST_SECONDS = 30.0


EMPTY_FRAME = json.dumps({"type": "history", "messages": []})


@dataclass(slots=True)  # one per room with a member here: small, for rooms of one
class _Room:
    members: int = 0
    messages: dict[int, dict] | None = None  # id -> message, the newest HISTORY_SIZE
    read_position: object = None  # the registry position of the trusted snapshot, if there is one
    read_time: float = 0.0  # when it was read (monotonic)
    frame: str | None = None  # the history frame as sent, built once per change


class RoomHistories:
    def __init__(self):
        self._rooms: dict[str, _Room] = {}

    def watch(self, room: str) -> object | None:
        """Call before reading a snapshot: a token that read() accepts as proof that a member of
        this process was in the room's group all along (None if none is there now)."""
        return self._rooms.get(room)

    def joined(self, room: str) -> None:
        """A member of this process joined the room's group."""
        self._rooms.setdefault(room, _Room()).members += 1

    def clear(self) -> None:
        """Forget every room (tests)."""
        self._rooms.clear()

    def left(self, room: str) -> None:
        record = self._rooms.get(room)
        if record is not None:
            record.members -= 1
            if record.members <= 0:
                del self._rooms[room]

    def received(self, room: str, message: dict) -> None:
        """A message reached a member here (through the group)."""
        record = self._rooms.get(room)
        if record is not None and (record.messages is None or message["id"] not in record.messages):
            self._keep(record, [message])

    def read(self, room: str, messages: list[dict], position, watched: object | None) -> None:
        """A snapshot read from the database at `position`. It is trusted if `watched` (from
        watch() before the read began) is still this room's record: then a member was in the group
        from before the read until now, and every later message has reached the record."""
        record = self._rooms.get(room)
        if record is None:
            return
        self._keep(record, messages)
        if watched is record:
            record.read_position, record.read_time = position, time.monotonic()

    def forget(self, room: str) -> None:
        """Something may be missing (a message stored but not relayed): read again next time."""
        record = self._rooms.get(room)
        if record is not None:
            record.read_position = None

    def frame(self, room: str, position) -> str | None:
        """The history frame for a new member, if this process can vouch for it."""
        record = self._rooms.get(room)
        if record is None or record.read_position is None:
            return None
        if record.read_position != position or time.monotonic() - record.read_time > TRUST_SECONDS:
            return None
        if not record.messages:
            return EMPTY_FRAME
        if record.frame is None:
            messages = sorted(record.messages.values(), key=lambda message: (message["at"], message["id"]))
            record.frame = json.dumps({"type": "history", "messages": messages})
        return record.frame

    @staticmethod
    def _keep(record: _Room, messages: list[dict]) -> None:
        if not messages:
            return
        if record.messages is None:
            record.messages = {}
        for message in messages:
            record.messages[message["id"]] = message
        if len(record.messages) > HISTORY_SIZE:
            newest = sorted(record.messages.values(), key=lambda message: (message["at"], message["id"]))
            record.messages = {message["id"]: message for message in newest[-HISTORY_SIZE:]}
        record.frame = None
