"""chat.history.RoomHistories: when a remembered room history may stand in for a database read."""

import json

import pytest

from chat import history
from chat.history import RoomHistories
from config_registry.selectors import Position

AT = Position("e", 7, 0)


def _message(number: int) -> dict:
    return {"id": number, "user": "alice", "text": f"m{number}", "at": f"2026-11-26T00:00:{number:02d}+00:00"}


def _texts(frame: str | None) -> list[str] | None:
    return None if frame is None else [message["text"] for message in json.loads(frame)["messages"]]


def test_history__snapshot_read_while_a_member_was_here__trusted_and_kept_current():
    rooms = RoomHistories()
    rooms.joined("lobby")
    watched = rooms.watch("lobby")
    rooms.received("lobby", _message(3))  # arrives while the snapshot is being read
    rooms.read("lobby", [_message(1), _message(2)], AT, watched)
    assert _texts(rooms.frame("lobby", AT)) == ["m1", "m2", "m3"]
    rooms.received("lobby", _message(4))
    rooms.received("lobby", _message(4))  # every member here receives it: kept once
    assert _texts(rooms.frame("lobby", AT)) == ["m1", "m2", "m3", "m4"]


def test_history__snapshot_read_before_anyone_was_here__not_trusted():
    rooms = RoomHistories()
    watched = rooms.watch("lobby")  # nobody: a message could fall between the read and the join
    rooms.joined("lobby")
    rooms.read("lobby", [_message(1)], AT, watched)
    assert rooms.frame("lobby", AT) is None


def test_history__everyone_left_meanwhile__not_trusted():
    rooms = RoomHistories()
    rooms.joined("lobby")
    watched = rooms.watch("lobby")
    rooms.left("lobby")  # nobody in the group for a while: messages may have been missed
    rooms.joined("lobby")
    rooms.read("lobby", [_message(1)], AT, watched)
    assert rooms.frame("lobby", AT) is None


def test_history__other_position_or_too_old_or_forgotten__not_trusted(monkeypatch):
    rooms = RoomHistories()
    rooms.joined("lobby")
    rooms.read("lobby", [_message(1)], AT, rooms.watch("lobby"))
    assert rooms.frame("lobby", Position("e", 8, 0)) is None  # a publish (or a deleted user) since
    now = history.time.monotonic()
    monkeypatch.setattr(history.time, "monotonic", lambda: now + history.TRUST_SECONDS + 1)
    assert rooms.frame("lobby", AT) is None
    monkeypatch.undo()
    assert _texts(rooms.frame("lobby", AT)) == ["m1"]
    rooms.forget("lobby")  # a message stored but not relayed
    assert rooms.frame("lobby", AT) is None


def test_history__the_newest_fifty_oldest_first():
    rooms = RoomHistories()
    rooms.joined("lobby")
    rooms.read("lobby", [_message(n) for n in range(1, 51)], AT, rooms.watch("lobby"))
    for number in (51, 52):
        rooms.received("lobby", _message(number))
    assert _texts(rooms.frame("lobby", AT)) == [f"m{n}" for n in range(3, 53)]


@pytest.mark.parametrize("members", [1, 3])
def test_history__last_member_leaves__room_forgotten(members):
    rooms = RoomHistories()
    for _ in range(members):
        rooms.joined("lobby")
    rooms.read("lobby", [_message(1)], AT, rooms.watch("lobby"))
    for _ in range(members):
        rooms.left("lobby")
    assert rooms.watch("lobby") is None and rooms.frame("lobby", AT) is None
