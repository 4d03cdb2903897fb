"""The one announcement of a commit that moved the registry, to every process, and its listeners.

settings.REGISTRY_BROADCASTER chooses how: RedisBroadcaster (pub/sub: every process sharing the
Redis server hears it) or LocalBroadcaster (this process only: the embedded default). Either way
state.registry_moved() announces, and two kinds of listeners hear it:
- request threads, through pushed(): the newest position announced, without a database read
  (Redis only; None means "read the database");
- event loops (the config watch, the chat), through listen(): a callback on the loop for every
  announced position, and with None when announcements may have been missed (after Redis came
  back), so that they look again.
"""

import asyncio
import contextlib
import contextvars
import logging
import threading
import weakref
from collections.abc import Callable

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from .feed import TRUST_SECONDS, PositionFeed

logger = logging.getLogger(__name__)

Listener = Callable[[object], None]  # called on its event loop with a Position, or None: look again


class BroadcastUnavailable(Exception):
    """Listening could not start (Redis is down): a connection that needs live changes is refused."""


def position_text(position) -> str:
    return f"{position.epoch}:{position.revision}:{position.token_generation}"


class LocalBroadcaster:
    """Announcements reach this process's event loops only (embedded: one process)."""

    def __init__(self, parse: Callable[[str], object]):
        self._parse = parse
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[Listener]] = weakref.WeakKeyDictionary()

    def announce(self, position) -> None:
        with self._lock:
            loops = [(loop, set(listeners)) for loop, listeners in self._loops.items() if listeners]
        for loop, listeners in loops:
            with contextlib.suppress(RuntimeError):  # that loop has closed since
                # In a context of its own: not the committing thread's (asgiref's, for one, is in it).
                loop.call_soon_threadsafe(_deliver, listeners, position, context=contextvars.Context())

    def pushed(self, *, may_block: bool = True):
        return None  # nothing is pushed to request threads: they read the database

    def confirmed(self, position) -> None:
        pass

    async def listen(self, listener: Listener) -> None:
        with self._lock:
            self._loops.setdefault(asyncio.get_running_loop(), set()).add(listener)

    def unlisten(self, listener: Listener) -> None:
        with self._lock:
            listeners = self._loops.get(asyncio.get_running_loop())
            if listeners is not None:
                listeners.discard(listener)

    def listening(self) -> int:
        """How many listeners this event loop has."""
        with self._lock:
            return len(self._loops.get(asyncio.get_running_loop(), ()))

    def reset(self) -> None:
        pass


class RedisBroadcaster(LocalBroadcaster):
    """Announcements are PUBLISHed on Redis; every process subscribes once for its request
    threads (feed.PositionFeed) and once per event loop with listeners."""

    CHANNEL = "config-registry:positions:{db}"  # pub/sub spans a server's databases: name ours
    RETRY_SECONDS = (0.25, 5.0)  # re-subscribing after a loss: first and longest wait

    def __init__(self, parse: Callable[[str], object], location: str):
        super().__init__(parse)
        self._location = location
        self._client = Redis.from_url(location, socket_connect_timeout=1, socket_timeout=5)
        self.channel = self.CHANNEL.format(db=self._client.connection_pool.connection_kwargs.get("db", 0))
        self._feed = PositionFeed(parse, self._subscribe)
        self._subscriptions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSubscription] = (
            weakref.WeakKeyDictionary()
        )

    def announce(self, position) -> None:
        self._feed.committed(position)
        try:
            self._client.publish(self.channel, position_text(position))
        except RedisError as error:  # the commit stands; others catch up within TRUST_SECONDS
            logger.warning(
                "could not announce registry position %s (%s); processes catch up within %ss",
                position_text(position),
                error,
                TRUST_SECONDS,
            )

    def pushed(self, *, may_block: bool = True):
        return self._feed.current(may_block=may_block)

    def confirmed(self, position) -> None:
        self._feed.confirmed(position)

    def reset(self) -> None:
        self._feed.reset()

    def _subscribe(self):
        # A connection of its own that never retries in place: a failure says messages may be lost.
        pubsub = Redis.from_url(
            self._location, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, socket_timeout=5
        ).pubsub()
        pubsub.subscribe(self.channel)
        return pubsub

    async def listen(self, listener: Listener) -> None:
        """Raises BroadcastUnavailable when this loop's subscription cannot start."""
        loop = asyncio.get_running_loop()
        subscription = self._subscriptions.get(loop)
        if subscription is None:
            subscription = self._subscriptions[loop] = _LoopSubscription(self)
        await subscription.start()
        await super().listen(listener)

    def unlisten(self, listener: Listener) -> None:
        super().unlisten(listener)
        loop = asyncio.get_running_loop()
        with self._lock:
            idle = not self._loops.get(loop)
        subscription = self._subscriptions.get(loop)
        if idle and subscription is not None:
            subscription.stop()
            del self._subscriptions[loop]

    def _loop_listeners(self) -> set[Listener]:
        with self._lock:
            return set(self._loops.get(asyncio.get_running_loop(), ()))

    async def _subscribed(self):
        pubsub = AsyncRedis.from_url(
            self._location,
            retry=AsyncRetry(NoBackoff(), 0),
            socket_connect_timeout=1,
            socket_keepalive=True,
            health_check_interval=30,  # a dead connection is found within a minute, quiet or not
        ).pubsub()
        try:
            await pubsub.subscribe(self.channel)
            message = await pubsub.get_message(timeout=1.0)
            if message is None or message["type"] != "subscribe":
                raise RedisError("no confirmation of the subscription")
        except BaseException:
            await pubsub.aclose()
            raise
        return pubsub


class _LoopSubscription:
    """One event loop's subscription: confirmed before its first listener is added (so that
    nothing announced after listen() returns is missed), renewed after a loss."""

    def __init__(self, broadcaster: RedisBroadcaster):
        self.broadcaster = broadcaster
        self.lock = asyncio.Lock()
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        if self.task is not None:
            return
        async with self.lock:
            if self.task is not None:
                return
            try:
                pubsub = await self.broadcaster._subscribed()
            except (RedisError, OSError) as error:
                raise BroadcastUnavailable(f"live changes are unavailable: {error}") from error
            self.task = asyncio.get_running_loop().create_task(self._run(pubsub))

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self, pubsub) -> None:
        parse = self.broadcaster._parse
        wait = self.broadcaster.RETRY_SECONDS[0]
        try:
            while True:
                try:
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=10.0)
                        if message is None:
                            continue
                        try:
                            position = parse(message["data"].decode())
                        except ValueError:
                            logger.warning("ignored a message on %s: not a registry position", message["channel"])
                            continue
                        _deliver(self.broadcaster._loop_listeners(), position)
                except (RedisError, OSError) as error:
                    logger.warning("live changes lost (%s); subscribing again", error)
                await pubsub.aclose()
                pubsub = None
                while pubsub is None:
                    await asyncio.sleep(wait)  # backing off while Redis is away
                    try:
                        pubsub = await self.broadcaster._subscribed()
                    except (RedisError, OSError):
                        wait = min(wait * 2, self.broadcaster.RETRY_SECONDS[1])
                wait = self.broadcaster.RETRY_SECONDS[0]
                logger.warning("live changes back; looking again at what may have been missed")
                _deliver(self.broadcaster._loop_listeners(), None)
        finally:
            if pubsub is not None:
                await pubsub.aclose()


def _deliver(listeners, position) -> None:
    for listener in listeners:
        try:
            listener(position)
        except Exception:
            logger.exception("a listener failed on registry position %s", position)
