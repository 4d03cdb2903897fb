"""The chat's fan-out in this process: room messages from the relay to each member's writer, and
registry moves to a re-resolution of the connected users' configurations, applied live."""

import asyncio
import json
import logging
import time
from typing import Any

from django.db import DatabaseError

from config_registry.asyncdb import db_call
from config_registry.exceptions import CacheUnavailable, RegistryUnavailable, SecurityConfigMissing
from config_registry.live.followers import LoopFollowers
from config_registry.live.relay import GroupRelay
from config_registry.metrics import FANOUT_SECONDS

from .history import RoomHistories
from .selectors import chat_configs

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
MAX_BACKLOG = 100  # room messages waiting for a client that does not read
UNAVAILABLE = (RegistryUnavailable, CacheUnavailable, SecurityConfigMissing, DatabaseError)
Member = Any  # a chat.consumers.ChatConsumer (which imports this module)
HISTORIES = RoomHistories()  # this process's rooms (see chat.history)


async def relay_deliver(group: str, message: dict, consumers: list[Member]) -> None:
    """What reaches this process for its chat connections (see RELAY)."""
    if message["type"] == "chat.message":
        await message_deliver(message, consumers)
    else:
        logger.warning("chat ignored a %r message to %s", message["type"], group)


async def message_deliver(event: dict, consumers: list[Member]) -> None:
    """A message to a room: into the room's history here, and to each member here (encoded once)."""
    message = {key: event[key] for key in ("id", "user", "text", "at")}
    HISTORIES.received(event["room"], message)
    frame = json.dumps(message | {"type": "message"})
    for consumer in consumers:
        frame_push(consumer, frame)


def frame_push(member: Member, frame: str) -> None:
    """A room message for one client. Sent in order by a writer of its own, so that a client that
    does not read holds up nobody else; beyond MAX_BACKLOG unsent messages it misses the newest
    (as with a channel layer's channel capacity), and sees them in the history when it reconnects."""
    outbox = member.outbox
    if outbox is None:
        outbox = member.outbox = []
    elif len(outbox) >= MAX_BACKLOG:
        if not member.behind:
            member.behind = True
            logger.warning(
                "chat client of %s in %r reads too slowly: dropping room messages",
                getattr(member.user, "username", None),
                member.room,
            )
        return
    outbox.append(frame)
    writer_start(member)


def writer_start(member: Member) -> None:
    """Send the member's waiting messages, once its first frames (history, config) are out."""
    if member.opened and member.outbox and member.writer is None:
        member.writer = asyncio.get_running_loop().create_task(_write(member))


async def _write(member: Member) -> None:
    try:
        while member.outbox:
            await member.send(text_data=member.outbox.pop(0))
    except OSError:  # the client has gone; its disconnect follows
        pass
    except Exception:
        logger.exception("chat could not send to %s in %r", getattr(member.user, "username", None), member.room)
    finally:
        member.writer, member.outbox = None, None


async def configs_refresh(consumers: list[Member]) -> None:
    """Re-resolve these connections' configurations (one hop to a database thread for all of
    them) and apply them live."""
    consumers = [consumer for consumer in consumers if consumer.user is not None]
    started = time.perf_counter()
    try:
        configs = await db_call(chat_configs)({consumer.user.username for consumer in consumers})
    except UNAVAILABLE as error:
        logger.warning("chat could not re-resolve its users' configuration; keeping the current one: %s", error)
        return
    for consumer in consumers:
        try:
            config = configs[consumer.user.username]
            if config is None:  # deactivated or deleted since the connection opened
                await consumer.refuse(
                    CLOSE_UNAUTHORIZED, "unauthorized", "your account is no longer active: the connection is closed"
                )
                continue
            await consumer.config_apply(config)
        except OSError:  # the client has just gone; its disconnect follows
            pass
        except Exception:
            logger.exception(
                "chat could not apply new configuration (user=%s, room=%r)", consumer.user.username, consumer.room
            )
    FANOUT_SECONDS.observe(time.perf_counter() - started)


async def relay_gap(group: str, consumers: list[Member]) -> None:
    """The process had been missing from a room's group: its history here may lack messages."""
    for room in {consumer.room for consumer in consumers}:
        HISTORIES.forget(room)


# The process's one membership of each room's group its connections are in.
RELAY = GroupRelay(relay_deliver, relay_gap)


class Followers(LoopFollowers):
    """The open chat connections of each event loop, following the registry: every move re-resolves
    them all, beside the relay: room messages keep flowing."""

    async def refresh(self, members: list[Member]) -> None:
        await configs_refresh(members)


FOLLOWERS = Followers()
