"""The chat socket: authenticate with a ticket, join the room, relay messages within the limits
of the user's resolved configuration, and follow that configuration live."""

import asyncio
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from config_registry.asyncdb import db_call
from config_registry.exceptions import SecurityConfigMissing
from config_registry.limits import text_problem
from config_registry.live.relay import group_message
from config_registry.metrics import CHAT_SOCKETS
from config_registry.ratelimit import window_count
from config_registry.state import registry_position_known
from project.infra.consumers import WithoutThreadHop

from .fanout import FOLLOWERS, HISTORIES, RELAY, UNAVAILABLE, configs_refresh, writer_start
from .selectors import ChatConfig, room_history
from .services import message_post
from .sessions import may_chat, session_open
from .tickets import TicketInvalid

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST, CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN = 4400, 4401, 4403
CLOSE_TOO_BIG, CLOSE_TRY_AGAIN, CLOSE_INTERNAL = 1009, 1013, 1011
MAX_FRAME_BYTES = 64 * 1024
MAX_ROOM_LENGTH = 100


def unavailable_message(error: Exception) -> str:
    """What a client is told when the registry cannot let it in now (names the key, not its place)."""
    if isinstance(error, SecurityConfigMissing):
        return f"{error.key} is not usable in the registry right now (operators: see the server log); retry shortly"
    return "the registry is unavailable; retry shortly"


def room_problem(room: str) -> str | None:
    if not 1 <= len(room) <= MAX_ROOM_LENGTH:
        return f"a room name has 1 to {MAX_ROOM_LENGTH} characters"
    if not room.isprintable():
        return "a room name cannot contain control characters"
    return None


def room_group(room: str) -> str:
    # Channel layer group names are short ASCII; room names may be any printable text.
    return "chat.room." + hashlib.sha256(room.encode()).hexdigest()[:40]


class ChatConsumer(WithoutThreadHop, AsyncJsonWebsocketConsumer):
    """ws/chat/<room>/?ticket=<JWT>. The handshake is accepted first and then closed with an
    application code, so that every client (browsers too) sees why: 4401 ticket, 4403 not allowed
    to chat, 4400 bad room name, 1013 registry unavailable; 1009 for a frame over 64 KiB."""

    channel_layer_alias = None  # no channel of its own: RELAY brings what its groups receive
    user = None  # set once the connection is open (its first frames sent)
    config: Mapping[str, Any] = MappingProxyType({})  # the user's chat.* values, once open (read-only here)
    joined = False  # a member of its room's group
    following = False  # re-resolved when the registry moves (fanout.FOLLOWERS)
    opened = False  # its first frames (history, config) sent
    outbox: list[str] | None = None  # room messages not yet sent to this client (fanout.frame_push)
    writer: asyncio.Task | None = None  # sending them
    behind = False  # has had to drop messages

    async def connect(self):
        await self.accept()
        CHAT_SOCKETS.inc()
        self.room = self.scope["url_route"]["kwargs"]["room"]
        problem = room_problem(self.room)
        if problem:
            return await self.refuse(CLOSE_BAD_REQUEST, "bad_request", problem)
        ticket = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("ticket", [""])[-1]
        # Usually everything is in this process's memory (keys, user, configuration, the room's
        # history) and the handshake costs no database read; otherwise one hop to a database thread.
        watched = HISTORIES.watch(self.room)  # before any read of the history
        try:
            session = await session_open(ticket=ticket, room=self.room)
        except TicketInvalid as error:
            return await self.refuse(CLOSE_UNAUTHORIZED, "unauthorized", str(error))
        except UNAVAILABLE as error:
            if not isinstance(error, SecurityConfigMissing):  # that one is logged once per position
                logger.warning("chat connect refused with 1013: %s", error)
            return await self.refuse(CLOSE_TRY_AGAIN, "unavailable", unavailable_message(error))
        if session.refusal:
            return await self.refuse(CLOSE_FORBIDDEN, "forbidden", session.refusal)
        layer = get_channel_layer()
        try:
            await RELAY.join(layer, room_group(self.room), self)
            self.joined = True
            HISTORIES.joined(self.room)  # after the process is in the room's group (chat.history)
            await FOLLOWERS.follow(self)
            self.following = True
        except Exception as error:  # the channel layer's backend (Redis) is down
            logger.warning("chat connect refused with 1013: channel layer unavailable: %s", error)
            return await self.refuse(CLOSE_TRY_AGAIN, "unavailable", "the chat is unavailable; retry shortly")
        try:
            frame = await self._history_frame(session, watched)
        except UNAVAILABLE as error:
            logger.warning("chat connect refused with 1013: %s", error)
            return await self.refuse(CLOSE_TRY_AGAIN, "unavailable", "the registry is unavailable; retry shortly")
        await self.send(text_data=frame)
        await self.send(text_data=session.config.frame)
        self.opened = True
        writer_start(self)  # for messages that reached the room while this connection was joining
        # From here on publishes apply live (not before: the history and config frames come first).
        self.user, self.config = session.user, session.config
        # A publish announced between reading the configuration and joining has not reached it.
        if registry_position_known(math.inf) != session.position:
            await configs_refresh([self])

    async def _history_frame(self, session, watched) -> str:
        """The room's history frame: as this process remembers it, if it can vouch for it; else
        read from the database (after joining: nothing can fall between the snapshot and the group)."""
        if session.history is not None:  # read before joining: trusted if a member was here all along
            HISTORIES.read(self.room, session.history, session.position, watched)
        frame = HISTORIES.frame(self.room, session.position)
        if frame is not None:
            return frame
        history = session.history
        if history is None:
            watched = HISTORIES.watch(self.room)
            history = await db_call(room_history)(self.room)
            HISTORIES.read(self.room, history, session.position, watched)
        return json.dumps({"type": "history", "messages": history})

    async def disconnect(self, code):
        CHAT_SOCKETS.dec()
        if self.writer is not None:
            self.writer.cancel()
        if self.following:
            FOLLOWERS.unfollow(self)
        if self.joined:
            HISTORIES.left(self.room)
            await RELAY.leave(room_group(self.room), self)

    async def dispatch(self, message):
        try:
            await super().dispatch(message)
        except StopConsumer:  # the normal end of a connection
            raise
        except OSError:
            # ASGI: sending to a client that has just gone raises OSError. Nothing to do: its
            # disconnect follows.
            logger.debug("chat client gone before %s could be delivered", message.get("type"))
        except Exception:
            # Only real bugs get here; expected failures are handled where they happen.
            logger.exception(
                "chat consumer failed on %s (user=%s, room=%r)",
                message.get("type"),
                getattr(self.user, "username", None),
                getattr(self, "room", None),
            )
            await self.close(code=CLOSE_INTERNAL)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if self.user is None:
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > MAX_FRAME_BYTES:
            return await self.close(code=CLOSE_TOO_BIG)
        try:
            content = json.loads(text_data) if text_data is not None else None
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            content = None
        if (
            not isinstance(content, dict)
            or content.get("type") != "message"
            or not isinstance(content.get("text"), str)
        ):
            return await self._error("bad_request", 'send {"type": "message", "text": "…"} as JSON text')
        problem = text_problem(content["text"])
        if problem:  # a lone surrogate or NUL: no database stores it, no client could read it back
            return await self._error("bad_request", f"the message cannot be stored: {problem}")
        await self.post(content["text"])

    async def post(self, text: str):
        if not text.strip():
            return await self._error("bad_request", "the message is empty")
        limit = self.config.get("chat.max_message_length", 2000)
        if len(text) > limit:
            return await self._error("too_long", f"messages are at most {limit} characters; this one has {len(text)}")
        per_minute = self.config.get("chat.rate_limit_per_minute", 30)
        try:
            count, wait = await db_call(window_count)(f"chat:{self.user.pk}", 60)
            if count > per_minute:
                return await self._error(
                    "rate_limited", f"at most {per_minute} messages a minute: retry in {int(wait) + 1} s"
                )
            message = await db_call(message_post)(room=self.room, user=self.user, text=text)
        except UNAVAILABLE:
            return await self._error("unavailable", "the message could not be stored; retry shortly")
        try:
            group = room_group(self.room)
            await get_channel_layer().group_send(
                group, group_message(group, {"type": "chat.message", "room": self.room, **message})
            )
        except Exception as error:  # the channel layer's backend (Redis) is down; the message is stored
            HISTORIES.forget(self.room)  # it is missing from the history this process remembers
            logger.warning("chat message %s stored but not relayed: %s", message["id"], error)
            await self._error(
                "unavailable",
                "your message was saved but could not be delivered live; others will see it in the history",
            )

    async def config_apply(self, config: ChatConfig) -> None:
        """This user's configuration after a publish: applied live, or the end of the connection."""
        if self.user is None or config is self.config or config == self.config:
            return
        self.config = config
        refusal = may_chat(config, self.room)
        if refusal:
            return await self.refuse(CLOSE_FORBIDDEN, "forbidden", refusal)
        await self.send(text_data=config.frame)

    async def _error(self, code: str, message: str):
        await self.send_json({"type": "error", "code": code, "message": message})

    async def refuse(self, close_code: int, code: str, message: str):
        """An error frame, then the close code: the end of this connection, with the reason."""
        self.user = None  # nothing more is relayed or applied
        await self._error(code, message)
        await self.close(code=close_code)
