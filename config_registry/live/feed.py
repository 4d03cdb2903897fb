"""The registry's position, pushed to every process so that a warm request need not ask for it.

After every commit that moves the registry, the committing process publishes the new position on
Redis (see state.locked_state). Every process subscribes, and before it answers with a position it
takes whatever has arrived: a look at its subscription's socket that does not wait. Redis writes a
published message to every subscriber before it answers the publisher, so a publish that has
returned is seen by the next request anywhere.

The feed is trusted only while it is known to be whole: after (re)subscribing, the process reads
the position from the database once; a failed or reconnected subscription sends it back to the
database until it has subscribed again; and it re-reads the database at least every TRUST_SECONDS,
so that a silent loss (a writer that could not reach Redis, a network that dropped a message)
leaves a process behind for no longer than that.
"""

import contextlib
import logging
import os
import threading
import time

from redis.exceptions import RedisError

from project.infra.redis_socket import bytes_waiting

logger = logging.getLogger(__name__)

TRUST_SECONDS = 1.0
RETRY_SECONDS = 1.0  # after a failure, subscribe again at most this often


class PositionFeed:
    """This process's subscription to published positions (one per process, used by any thread)."""

    def __init__(self, parse, subscribe):
        self._parse = parse  # text -> Position
        self._subscribe = subscribe  # () -> a redis-py PubSub, its subscribe() sent
        self._lock = threading.Lock()
        self._pubsub = None
        self._pid = None
        self._position = None
        self._confirmed_at = -TRUST_SECONDS
        self._retry_at = 0.0
        self._polls = 0  # looks at the subscription's socket begun so far

    def current(self, *, may_block: bool = True):
        """The newest position pushed to this process, or None when it must read the database
        (and then report what it read to confirmed()). With may_block=False (on an event loop) it
        neither waits for another thread nor subscribes: None then, too."""
        polls = self._polls
        pubsub = self._pubsub
        # Without the lock when nothing has arrived and no thread is reading what arrived before (it
        # would hold the lock): the socket first, then the lock, is the order that makes this safe.
        if (
            pubsub is not None
            and self._pid == os.getpid()
            and bytes_waiting(pubsub) is False
            and not self._lock.locked()
        ):
            return self._trusted()
        if not self._lock.acquire(blocking=may_block):
            return None
        try:
            if not may_block and (self._pubsub is None or self._pid != os.getpid()):
                return None
            if not self._listening():
                return None
            if self._polls != polls:
                # Another thread looked while this one waited for the lock, after this call began:
                # what had arrived by then has been taken (many threads, one look at the socket).
                return self._trusted()
            self._polls += 1
            try:
                while (message := self._pubsub.get_message(timeout=0.0)) is not None:
                    if message["type"] == "message":
                        self._take(self._parse(message["data"].decode()), pushed=True)
                    elif message["type"] == "subscribe":  # (re)subscribed: earlier messages may be lost
                        self._confirmed_at = -TRUST_SECONDS
            except (RedisError, OSError, ValueError) as error:
                self._drop(error)
                return None
            return self._trusted()
        finally:
            self._lock.release()

    def _trusted(self):
        if self._position is None or time.monotonic() - self._confirmed_at > TRUST_SECONDS:
            return None
        return self._position

    def confirmed(self, position) -> None:
        """`position` was just read from the database (committed). Once subscribed, every later
        change arrives on the feed, so the feed is good from this position on."""
        with self._lock:
            if self._pubsub is not None and self._pid == os.getpid():
                self._take(position)
                self._confirmed_at = time.monotonic()

    def committed(self, position) -> None:
        """This process committed `position`: its own next read sees it at once. (Redis answers the
        publisher and writes to subscribers in the same pass of its loop, not always in that order.)"""
        with self._lock:
            if self._pubsub is not None and self._pid == os.getpid():
                self._take(position)

    def reset(self) -> None:
        """Forget everything (tests: a new database behind the same process)."""
        with self._lock:
            self._drop(None)
            self._position, self._retry_at = None, 0.0

    def _take(self, position, pushed: bool = False) -> None:
        current = self._position
        if current is not None and current.epoch and current.epoch != position.epoch:
            # Another registry's database (Redis channels are shared by all its databases), or this
            # one re-created: only a read of our own database may move to another epoch. (An empty
            # epoch is a registry before its first commit.)
            if not pushed:
                self._position = position
            return
        if current is None or position > current:
            self._position = position

    def _listening(self) -> bool:
        if self._pubsub is not None and self._pid == os.getpid():
            return True
        self._pubsub = None  # a forked child must not share its parent's socket
        if time.monotonic() < self._retry_at:
            return False
        try:
            pubsub = self._subscribe()
            # Wait for Redis to confirm: only from then on is every publish delivered to us.
            message = pubsub.get_message(timeout=1.0)
            if message is None or message["type"] != "subscribe":
                pubsub.close()
                raise RedisError("no confirmation of the subscription")
        except (RedisError, OSError) as error:
            self._retry_at = time.monotonic() + RETRY_SECONDS
            logger.warning("registry position feed unavailable (%s); reading positions from the database", error)
            return False
        self._pubsub, self._pid, self._confirmed_at = pubsub, os.getpid(), -TRUST_SECONDS
        return True

    def _drop(self, error) -> None:
        if error is not None:
            logger.warning("registry position feed lost (%s); reading positions from the database", error)
            self._retry_at = time.monotonic() + RETRY_SECONDS
        if self._pubsub is not None and self._pid == os.getpid():
            with contextlib.suppress(RedisError, OSError):
                self._pubsub.close()
        self._pubsub, self._confirmed_at = None, -TRUST_SECONDS
