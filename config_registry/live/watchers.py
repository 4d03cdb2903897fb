"""The config watch sockets of each event loop, following the registry together: one listener per
loop on the broadcaster, and at every move one batched resolution per (environment, service) for all
of the loop's watchers (one read of the shared part, one of their overlays), after which each socket
pushes what changed for it. No per-socket database read, whatever the number of watchers."""

import asyncio
import logging
import weakref
from typing import Any

from django.db import DatabaseError

from ..asyncdb import db_call
from ..exceptions import CacheUnavailable, RegistryUnavailable
from ..selectors import contexts_resolve
from .followers import LoopFollowers

logger = logging.getLogger(__name__)

Watcher = Any  # a config_registry.consumers.ConfigWatchConsumer (which imports this module)


class WatchFollowers(LoopFollowers):
    def __init__(self):
        super().__init__()
        self._running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()
        self._again: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, bool] = weakref.WeakKeyDictionary()

    def moved(self, members: list[Watcher]) -> None:
        """One refresh at a time per loop, and one more after it when moves came meanwhile."""
        loop = asyncio.get_running_loop()
        if loop in self._running:
            self._again[loop] = True
        else:
            self._running[loop] = loop.create_task(self._run(loop))

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            again = True
            while again:
                await self._refresh(self.members_of(loop))
                again = self._again.pop(loop, False)
        finally:
            del self._running[loop]

    async def _refresh(self, watchers: list[Watcher]) -> None:
        by_context: dict[tuple[str, str], list[Watcher]] = {}
        for watcher in watchers:
            if watcher.context is not None:
                by_context.setdefault((watcher.context["environment"], watcher.context["service"]), []).append(watcher)
        for (environment, service), group in by_context.items():
            try:
                position, resolved = await db_call(contexts_resolve)(
                    environment, service, {watcher.context["user"] for watcher in group}
                )
            except (DatabaseError, RegistryUnavailable, CacheUnavailable) as error:
                logger.warning(
                    "config watch could not re-resolve %s/%s; will retry at the next revision: %s",
                    environment,
                    service,
                    error,
                )
                continue
            for watcher in group:
                try:
                    await watcher.moved_to(position.revision, resolved)
                except OSError:  # the client has just gone; its disconnect follows
                    pass
                except Exception:
                    logger.exception("config watch could not follow a registry move (%s)", watcher.context)


WATCHERS = WatchFollowers()
