"""Whether a redis-py subscription has bytes waiting, asked of its socket without redis-py.

The position feed looks at its subscription before every request; doing that through redis-py
(PubSub.get_message) means holding the feed's lock across a poll() that releases the interpreter
lock, and under threaded workers every other thread then queues on the feed's lock. Asking the
socket directly needs no lock: only when something is waiting does a thread take the lock to read.

redis-py has no public accessor for a connection's socket: this reads `Connection._sock` (redis-py
5 to 8). tests/test_infra_adapters.py fails on the upgrade that changes it.
"""

import select


def bytes_waiting(pubsub) -> bool | None:
    """True if the subscription's socket has something to read, False if not, None if unknown
    (no connection or socket: the caller must read through redis-py)."""
    connection = getattr(pubsub, "connection", None)
    sock = getattr(connection, "_sock", None)
    if sock is None:
        return None
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # closed meanwhile
        return None
