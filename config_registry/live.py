"""Live changes: every committed revision is announced on the channel layer, to every process
sharing it, so that connected consumers (config watch, chat) re-resolve at once."""

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

REVISIONS_GROUP = "registry.revisions"
REVISION_EVENT = "registry.revision"  # handled by consumers' registry_revision()


def broadcast_revision(sender, revision: int, **kwargs) -> None:
    """Receiver of services.config_changed (sent after commit). A layer that is down must not
    undo or fail a publish that already committed: consumers catch up at the next revision."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        from .selectors import database_position

        position = database_position()  # committed; carries the epoch and token generation along
        async_to_sync(layer.group_send)(REVISIONS_GROUP, {"type": REVISION_EVENT, **position._asdict()})
    except Exception:
        logger.warning("could not announce revision %s on the channel layer", revision, exc_info=True)


class RevisionRelay:
    """registry.revision events for the consumers of this process through one membership of
    REVISIONS_GROUP (per event loop) instead of one per connection: joining and leaving cost the
    channel layer nothing while the process has other members (on Redis, three round trips fewer
    per connection), and a publish crosses the layer once per process instead of once per
    connection. `deliver(event, members)` is awaited for each event, one event after the other."""

    REFRESH_SECONDS = 3600.0  # re-join well within the layer's group expiry (a day by default)

    def __init__(self, deliver: Callable[[dict, list], Awaitable[None]]):
        self._deliver = deliver
        self._relays: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopRelay] = weakref.WeakKeyDictionary()

    async def join(self, layer, member) -> None:
        """Raises what the layer raises when it is down (the member has not joined then)."""
        loop = asyncio.get_running_loop()
        relay = self._relays.get(loop)
        if relay is None:
            relay = self._relays[loop] = _LoopRelay(layer, self._deliver)
        await relay.join(member)

    async def leave(self, member) -> None:
        loop = asyncio.get_running_loop()
        relay = self._relays.get(loop)
        if relay is not None:
            await relay.leave(member)


class _LoopRelay:
    def __init__(self, layer, deliver):
        self.layer, self.deliver = layer, deliver
        self.members: set = set()
        self.lock = asyncio.Lock()
        self.channel: str | None = None
        self.task: asyncio.Task | None = None

    async def join(self, member) -> None:
        if self.task is None:
            async with self.lock:
                if self.task is None:
                    channel = await self.layer.new_channel()
                    await self.layer.group_add(REVISIONS_GROUP, channel)
                    self.channel, self.task = channel, asyncio.create_task(self._relay(channel))
        self.members.add(member)

    async def leave(self, member) -> None:
        self.members.discard(member)
        if self.members or self.task is None:
            return
        async with self.lock:
            if self.members or self.task is None:
                return
            task, self.task = self.task, None
            task.cancel()
            try:
                await self.layer.group_discard(REVISIONS_GROUP, self.channel)
            except Exception as error:  # the layer is down: the membership expires by itself
                logger.warning("could not leave %s: %s", REVISIONS_GROUP, error)

    async def _relay(self, channel: str) -> None:
        receiving = asyncio.ensure_future(self.layer.receive(channel))
        try:
            while True:
                done, _ = await asyncio.wait({receiving}, timeout=RevisionRelay.REFRESH_SECONDS)
                if not done:
                    await self._refresh(channel)
                    continue
                event = receiving.result()
                receiving = asyncio.ensure_future(self.layer.receive(channel))
                try:
                    await self.deliver(event, list(self.members))
                except Exception:
                    logger.exception("could not deliver %s to this process's consumers", event.get("type"))
        finally:
            receiving.cancel()

    async def _refresh(self, channel: str) -> None:
        try:
            await self.layer.group_add(REVISIONS_GROUP, channel)
        except Exception as error:
            logger.warning("could not renew this process's membership of %s: %s", REVISIONS_GROUP, error)
