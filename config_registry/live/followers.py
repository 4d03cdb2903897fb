"""Sockets of each event loop following the registry together: one listener on the broadcaster per
loop (from its first socket to its last), and at every move one refresh of all of the loop's sockets
(the chat's connections, the config watches): one at a time per loop, and one more after it when
moves came meanwhile (for the sockets there are then)."""

import asyncio
import logging
import weakref
from typing import Any

from ..state import broadcaster, position_observed

logger = logging.getLogger(__name__)


class LoopFollowers:
    """Subclasses say what a move does to the loop's sockets (refresh())."""

    def __init__(self):
        self._members: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set] = weakref.WeakKeyDictionary()
        self._running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()
        self._again: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, bool] = weakref.WeakKeyDictionary()

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

    async def refresh(self, members: list) -> None:
        raise NotImplementedError

    def _moved(self, position) -> None:
        # A commit somewhere (or None: some may have been missed).
        if position is not None:
            position_observed(position)
        loop = asyncio.get_running_loop()
        if not self._members.get(loop):
            return
        if loop in self._running:
            self._again[loop] = True
        else:
            self._running[loop] = loop.create_task(self._run(loop))

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            again = True
            while again:
                try:
                    await self.refresh(self.members_of(loop))
                except Exception:
                    logger.exception("%s could not follow a registry move", type(self).__name__)
                again = self._again.pop(loop, False)
        finally:
            del self._running[loop]
