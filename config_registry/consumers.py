"""The config watch socket: a service's resolved configuration now, then at every change."""

import asyncio
import logging
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import DatabaseError, DataError
from django.utils import timezone

from .api.authentication import token_from_header
from .api.permissions import context_refusal
from .asyncdb import db_call
from .audit import Actor
from .exceptions import CacheUnavailable, InvalidInput, NotFound, RegistryUnavailable
from .live.broadcast import BroadcastUnavailable
from .live.watchers import WATCHERS
from .metrics import WATCH_SOCKETS
from .models import Scope, ServiceToken
from .selectors import ResolvedConfig, TokenRejected, config_resolve, context_of, masked, token_authenticate
from .services import config_reveal
from .usage import USAGE

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST, CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_TRY_AGAIN = 4400, 4401, 4403, 4404, 1013


class ConfigWatchConsumer(AsyncJsonWebsocketConsumer):
    """ws/config/?environment=E&service=S[&user=U] with 'Authorization: Bearer <token>'.

    The handshake is accepted first and then closed with an application code, so that every
    client sees why: 4400 bad parameters, 4401 token, 4403 scope or limits, 4404 unknown user,
    1013 registry unavailable.
    """

    channel_layer_alias = None  # no channel of its own: registry moves come through WATCHERS
    following = False  # the registry's moves, with the loop's other watchers

    async def connect(self):
        await self.accept()
        WATCH_SOCKETS.inc()
        self.token, self.context, self.last, self.expiry = None, None, None, None
        headers = dict(self.scope.get("headers", []))
        self.raw = token_from_header(headers.get(b"authorization", b"").decode("latin-1")) or ""
        try:
            self.token = await db_call(token_authenticate)(self.raw)
        except TokenRejected as error:
            return await self._refuse(CLOSE_UNAUTHORIZED, "unauthorized", str(error))
        except DatabaseError:
            return await self._refuse(CLOSE_TRY_AGAIN, "unavailable", "the registry is unavailable; retry")
        query = {k: v[-1] for k, v in parse_qs(self.scope.get("query_string", b"").decode()).items()}
        environment, service = query.get("environment"), query.get("service")
        if not environment or not service:
            return await self._refuse(CLOSE_BAD_REQUEST, "bad_request", "environment and service are required")
        refusal = watch_refusal(self.token, environment, service)
        if refusal:
            return await self._refuse(CLOSE_FORBIDDEN, "forbidden", refusal)
        self.context = {"environment": environment, "service": service, "user": query.get("user")}
        # Follow before the first read, so that no revision can fall between the two.
        try:
            await WATCHERS.follow(self)
            self.following = True
        except BroadcastUnavailable as error:  # Redis is down
            logger.warning("config watch refused with 1013: %s", error)
            return await self._refuse(CLOSE_TRY_AGAIN, "unavailable", "live updates are unavailable; retry")
        self._expiry_watch()
        if USAGE.served(self.token.pk, environment, service, query.get("user"), flush=False):
            await db_call(USAGE.flush)()
        await self._push()

    def _expiry_watch(self) -> None:
        """Close the socket when its token expires, publish or not."""
        if self.token.expires_at is not None:
            delay = max((self.token.expires_at - timezone.now()).total_seconds(), 0) + 0.05
            loop = asyncio.get_running_loop()
            self.expiry = loop.call_later(delay, lambda: loop.create_task(self._token_recheck()))

    async def _token_recheck(self) -> bool:
        """Is the token still valid, with the scope and limits that let it in? If not: 4401.
        (Revocations and changes anywhere move the token generation, announced with revisions.)"""
        if self.context is None:
            return False
        try:
            token = await db_call(token_authenticate)(self.raw)
        except TokenRejected as error:
            await self._refuse(CLOSE_UNAUTHORIZED, "unauthorized", str(error))
            return False
        except DatabaseError:  # checked again at the next revision
            return True
        refusal = watch_refusal(token, self.context["environment"], self.context["service"])
        if refusal:
            await self._refuse(CLOSE_UNAUTHORIZED, "unauthorized", f"the token no longer lets this watch in: {refusal}")
            return False
        self.token = token
        return True

    async def disconnect(self, code):
        WATCH_SOCKETS.dec()
        if self.expiry is not None:
            self.expiry.cancel()
        if self.following:
            WATCHERS.unfollow(self)

    async def receive_json(self, content, **kwargs):
        await self.send_json(
            {
                "type": "error",
                "code": "bad_request",
                "message": "this socket only sends; nothing is expected from the client",
            }
        )

    async def moved_to(self, revision: int, resolved: dict) -> None:
        """The registry moved: re-check the token, push what changed. `resolved`: the loop's
        batched resolutions of this context's users ({user: (active, resolution)})."""
        if self.context is None or not await self._token_recheck():
            return
        found = resolved.get(self.context["user"])
        if found is None:
            return await self._refuse(CLOSE_NOT_FOUND, "not_found", f"user {self.context['user']!r} does not exist")
        await self._push(masked(revision, context_of(**self.context), found[1]))

    async def _push(self, resolved: ResolvedConfig | None = None):
        try:
            if resolved is None:
                resolved = await db_call(config_resolve)(**self.context)
            seen = (resolved.values, {key: resolved.provenance[key] for key in resolved.secrets})
            if seen == self.last:
                return
            self.last = seen
            if Scope.SECRETS_READ in self.token.scopes and resolved.secrets:
                resolved = await db_call(config_reveal)(
                    **self.context, actor=Actor(f"token:{self.token.name}", "ws/config")
                )
        except (InvalidInput, DataError) as error:
            return await self._refuse(CLOSE_BAD_REQUEST, "bad_request", str(error))
        except NotFound as error:
            return await self._refuse(CLOSE_NOT_FOUND, "not_found", str(error))
        except (DatabaseError, RegistryUnavailable, CacheUnavailable):
            if self.last is None:
                return await self._refuse(CLOSE_TRY_AGAIN, "unavailable", "the registry is unavailable; retry")
            logger.warning("config watch could not re-resolve %s; will retry at the next revision", self.context)
            return
        frame = {"type": "config", "revision": resolved.revision, "values": resolved.values}
        await self.send_json({**frame, "secrets": sorted(resolved.secrets)})

    async def _refuse(self, code: int, error: str, message: str):
        await self.send_json({"type": "error", "code": error, "message": message})
        self.context = None if code != CLOSE_TRY_AGAIN else self.context
        await self.close(code=code)


def watch_refusal(token: ServiceToken, environment: str, service: str) -> str | None:
    """Why `token` may not watch (environment, service), or None."""
    if Scope.CONFIG_READ not in token.scopes:
        return f"token {token.name!r} lacks config:read"
    return context_refusal(token, environment=environment, service=service)


class NoRouteConsumer(AsyncJsonWebsocketConsumer):
    """Any WebSocket path without a route: accepted and closed 4404 with an error frame (a router
    error would be an HTTP 500 and a traceback in the log, which anyone could fill)."""

    async def connect(self):
        await self.accept()
        await self.send_json(
            {
                "type": "error",
                "code": "not_found",
                "message": "no WebSocket endpoint here: see ws/config/ and ws/chat/<room>/",
            }
        )
        await self.close(code=CLOSE_NOT_FOUND)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        pass
