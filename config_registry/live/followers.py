"""Sockets of each event loop following the registry together: one listener on the broadcaster per
loop (from its first socket to its last), and at every move one call with all of the loop's sockets
(the chat's connections, the config watches)."""

import asyncio
import weakref
from typing import Any

from ..state import broadcaster, position_observed


class LoopFollowers:
    """Subclasses say what a move does to the loop's sockets (moved())."""

    def __init__(self):
        self._members: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set] = weakref.WeakKeyDictionary()

    async def follow(self, member: Any) -> None:
        """Raises live.broadcast.BroadcastUnavailable when the registry's moves cannot be heard."""
        loop = asyncio.get_running_loop()
        members = self._members.get(loop)
        if members is None:
            await broadcaster().listen(self._moved)
            members = self._members.setdefault(loop, set())
        members.add(member)

    def unfollow(self, member: Any) -> None:
        loop = asyncio.get_running_loop()
        members = self._members.get(loop)
        if members is None:
            return
        members.discard(member)
        if not members:
            del self._members[loop]
            broadcaster().unlisten(self._moved)

    def members_of(self, loop: asyncio.AbstractEventLoop) -> list:
        return list(self._members.get(loop, ()))

    def moved(self, members: list) -> None:
        raise NotImplementedError

    def _moved(self, position) -> None:
        # A commit somewhere (or None: some may have been missed).
        if position is not None:
            position_observed(position)
        members = self.members_of(asyncio.get_running_loop())
        if members:
            self.moved(members)
