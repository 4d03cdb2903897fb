"""One membership per process of each channel-layer group its chat connections are in (rooms)."""

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable

from django.conf import settings

logger = logging.getLogger(__name__)


class GroupRelay:
    """Channel-layer groups joined once per process (per event loop) for all of its members,
    through one channel of its own: joining a group that already has a member here, and leaving
    it while others stay, cost the channel layer nothing (on Redis, no round trip), and a message
    to a group crosses the layer once per process instead of once per member.

    Messages name their group (`"group": name`, see group_message()); `deliver(group, message,
    members)` is awaited for each, one after the other, in the order they arrived.

    Every settings.CHANNEL_GROUP_REFRESH_SECONDS the relay joins its groups again: that keeps them
    within the layer's group expiry, and brings the process back into groups that Redis lost (a
    restart, a failover); `gap(group, members)` is then called for each group it had been missing
    from, as messages may have been missed."""

    CHANNEL_PREFIX = "relay"  # the capacity of these channels is set in settings.CHANNEL_LAYERS

    def __init__(
        self,
        deliver: Callable[[str, dict, list], Awaitable[None]],
        gap: Callable[[str, list], Awaitable[None]] | None = None,
    ):
        self._deliver, self._gap = deliver, gap
        self._relays: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopRelay] = weakref.WeakKeyDictionary()

    async def join(self, layer, group: str, member) -> None:
        """Raises what the layer raises when it is down (the member has not joined then)."""
        loop = asyncio.get_running_loop()
        relay = self._relays.get(loop)
        if relay is None:
            relay = self._relays[loop] = _LoopRelay(layer, self._deliver, self._gap)
        await relay.join(group, member)

    async def leave(self, group: str, member) -> None:
        relay = self._relays.get(asyncio.get_running_loop())
        if relay is not None:
            await relay.leave(group, member)


def group_message(group: str, message: dict) -> dict:
    """`message` for a group_send() to `group`, as GroupRelay delivers it."""
    return {**message, "group": group}


class _LoopRelay:
    def __init__(self, layer, deliver, gap):
        self.layer, self.deliver, self.gap = layer, deliver, gap
        self.groups: dict[str, set] = {}  # group -> its members here
        self.lock = asyncio.Lock()  # one change of membership at a time
        self.channel: str | None = None
        self.task: asyncio.Task | None = None

    async def join(self, group: str, member) -> None:
        members = self.groups.get(group)
        if members is not None:  # the usual case: no I/O
            members.add(member)
            return
        async with self.lock:
            if self.task is None:
                self.channel = await self.layer.new_channel(GroupRelay.CHANNEL_PREFIX)
                self.task = asyncio.create_task(self._relay(self.channel))
            members = self.groups.get(group)
            if members is None:
                try:
                    await self.layer.group_add(group, self.channel)
                except BaseException:
                    if not self.groups:
                        self._stop()
                    raise
                members = self.groups[group] = set()
            members.add(member)

    async def leave(self, group: str, member) -> None:
        members = self.groups.get(group)
        if members is None:
            return
        members.discard(member)
        if members:
            return
        async with self.lock:
            if members or self.groups.get(group) is not members:
                return
            del self.groups[group]
            try:
                await self.layer.group_discard(group, self.channel)
            except Exception as error:  # the layer is down: the membership expires by itself
                logger.warning("could not leave %s: %s", group, error)
            if not self.groups:
                self._stop()

    def _stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = self.channel = None

    async def _relay(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        every = settings.CHANNEL_GROUP_REFRESH_SECONDS
        refresh_at = loop.time() + every
        receiving = asyncio.ensure_future(self.layer.receive(channel))
        try:
            while True:
                done, _ = await asyncio.wait({receiving}, timeout=max(refresh_at - loop.time(), 0))
                if loop.time() >= refresh_at:
                    await self._refresh(channel)
                    refresh_at = loop.time() + every
                if not done:
                    continue
                message = receiving.result()
                receiving = asyncio.ensure_future(self.layer.receive(channel))
                members = self.groups.get(message.get("group"))
                if not members:
                    continue
                try:
                    await self.deliver(message["group"], message, list(members))
                except Exception:
                    logger.exception("could not deliver %s to this process's members", message.get("type"))
        finally:
            receiving.cancel()

    async def _refresh(self, channel: str) -> None:
        for group in list(self.groups):
            async with self.lock:  # not a group that its last member is leaving
                if group not in self.groups:
                    continue
                try:
                    added = await self.layer.group_add(group, channel)
                except Exception as error:  # the layer is down: again at the next refresh
                    logger.warning("could not renew this process's membership of %s: %s", group, error)
                    continue
            members = self.groups.get(group)
            if added and members and self.gap:  # (only a layer that says so: project.infra.channel_layer on Redis)
                logger.warning("this process had been missing from %s (Redis restarted?); joined it again", group)
                try:
                    await self.gap(group, list(members))
                except Exception:
                    logger.exception("could not catch up on %s", group)
