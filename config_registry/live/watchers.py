"""The config watch sockets of each event loop, following the registry together: one listener per
loop on the broadcaster, and at every move one batched resolution per (environment, service) for all
of the loop's watchers (one read of the shared part, one of their overlays), after which each socket
pushes what changed for it. No per-socket database read, whatever the number of watchers."""

import logging
from typing import Any

from django.db import DatabaseError

from ..asyncdb import db_call
from ..exceptions import CacheUnavailable, RegistryUnavailable
from ..selectors import contexts_resolve
from .followers import LoopFollowers

logger = logging.getLogger(__name__)

Watcher = Any  # a config_registry.consumers.ConfigWatchConsumer (which imports this module)


class WatchFollowers(LoopFollowers):
    async def refresh(self, watchers: list[Watcher]) -> None:
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
