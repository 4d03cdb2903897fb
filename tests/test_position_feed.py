"""The registry position pushed to processes (config_registry.live.broadcast and .feed), against
real Redis, and rate limits counted in batches (config_registry.ratelimit)."""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config_registry import ratelimit, selectors, state
from config_registry.live import broadcast, feed
from config_registry.memory import memos_clear
from config_registry.selectors import Position, registry_position


@pytest.fixture
def feed_redis(transactional_db):
    """Real Redis behind the cache; the feed is used outside transactions only, hence transactional_db."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: run with REDIS_URL=redis://… (the position feed is a Redis subscription)")
    from redis import Redis

    client = Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


def _publish(client, position: Position) -> None:
    assert client.publish(state.broadcaster().channel, broadcast.position_text(position)) >= 1  # someone listens


def _read_with_queries() -> tuple[Position, int]:
    with CaptureQueriesContext(connection) as queries:
        position = registry_position()
    return position, len(queries)


def test_feed__after_one_database_read__pushed_positions_without_queries(feed_redis):
    from config_registry.services import revision_bump

    revision_bump()  # the registry's first commit gives it its epoch
    memos_clear()
    state.state_clear()
    first, queries = _read_with_queries()
    assert queries == 1  # subscribed, then read once from the database
    assert _read_with_queries() == (first, 0)

    newer = Position(first.epoch, first.revision + 5, first.token_generation + 1)
    _publish(feed_redis, newer)
    assert _read_with_queries() == (newer, 0)  # the very next read, no waiting
    _publish(feed_redis, first)  # an older position arriving late never goes back
    assert _read_with_queries() == (newer, 0)
    # Another registry on the same Redis server (channels span its databases): not ours.
    _publish(feed_redis, Position("0" * 32, newer.revision + 100, 0))
    assert _read_with_queries() == (newer, 0)


def test_feed__a_commit_here_is_published_to_every_subscriber(feed_redis, make_layer):
    registry_position()
    listener = feed_redis.pubsub()
    listener.subscribe(state.broadcaster().channel)
    assert listener.get_message(timeout=5)["type"] == "subscribe"
    make_layer("global", {"feature.flag": True})
    texts = []
    while (message := listener.get_message(timeout=5)) is not None:
        texts.append(message["data"].decode())
        if texts[-1] == broadcast.position_text(selectors.database_position()):
            break
    listener.close()
    assert texts and texts[-1] == broadcast.position_text(selectors.database_position())
    assert _read_with_queries() == (selectors.database_position(), 0)


def test_feed__subscription_killed__database_until_subscribed_again(feed_redis, monkeypatch):
    first, _ = _read_with_queries()
    feed_redis.client_kill_filter(_type="pubsub")  # as when Redis restarts: messages may be lost
    position, queries = _read_with_queries()
    assert (position, queries) == (first, 1)

    monkeypatch.setattr(state.broadcaster()._feed, "_retry_at", 0.0)  # RETRY_SECONDS later
    assert _read_with_queries() == (first, 1)  # subscribed again, and read once more from the database
    assert _read_with_queries() == (first, 0)


def test_feed__trusted_for_trust_seconds_then_read_again(feed_redis, monkeypatch):
    import time

    _read_with_queries()
    assert _read_with_queries()[1] == 0
    now = time.monotonic()
    monkeypatch.setattr(feed.time, "monotonic", lambda: now + feed.TRUST_SECONDS + 0.5)
    assert _read_with_queries()[1] == 1  # a silent loss would leave this process behind no longer
    assert _read_with_queries()[1] == 0


def test_feed__inside_a_transaction__reads_what_the_transaction_sees(feed_redis):
    from django.db import transaction

    from config_registry.services import revision_bump

    before, _ = _read_with_queries()
    with transaction.atomic():
        revision_bump()
        inside, queries = _read_with_queries()
        assert (inside.revision, queries) == (before.revision + 1, 1)
    assert registry_position().revision == before.revision + 1


# Rate limits in batches ---------------------------------------------------------------------


@pytest.fixture
def frozen_clock(monkeypatch):
    """ratelimit's monotonic clock, moved by hand (the window itself follows the wall clock)."""
    clock = {"now": 1_000.0}
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: clock["now"])
    return clock


def _shared_count(name: str, period: int) -> int:
    return cache.get(ratelimit._window(name, period)[0], 0)


def test_batched_count__far_from_the_limit__added_to_the_shared_count_in_batches(frozen_clock):
    counts = [ratelimit.window_count_batched("busy", 3600, 1000)[0] for _ in range(10)]
    assert counts == list(range(1, 11))  # exact in this process
    assert _shared_count("busy", 3600) == 1  # only the first was sent
    frozen_clock["now"] += ratelimit.FLUSH_SECONDS
    assert ratelimit.window_count_batched("busy", 3600, 1000)[0] == 11
    assert _shared_count("busy", 3600) == 11


def test_batched_count__from_half_the_limit__every_event_counted_in_the_shared_cache(frozen_clock):
    for expected in range(1, 5):
        assert ratelimit.window_count_batched("near", 3600, 4)[0] == expected
    assert _shared_count("near", 3600) == 4
    for _ in range(10):  # another process's events, counted one by one
        ratelimit.window_count("near", 3600)
    assert ratelimit.window_count_batched("near", 3600, 4)[0] == 15


def test_batched_count__while_one_thread_sends__the_others_count_without_waiting(frozen_clock, monkeypatch):
    import threading

    sending, release, shared = threading.Event(), threading.Event(), ratelimit._shared_add

    def slow_add(key, timeout, amount):
        sending.set()
        assert release.wait(timeout=30)
        return shared(key, timeout, amount)

    monkeypatch.setattr(ratelimit, "_shared_add", slow_add)
    sender = threading.Thread(target=ratelimit.window_count_batched, args=("busy", 3600, 1000))
    sender.start()
    try:
        assert sending.wait(timeout=30)  # the first event is on its way to the shared cache
        counts = []
        counter = threading.Thread(target=lambda: counts.append(ratelimit.window_count_batched("busy", 3600, 1000)))
        counter.start()
        counter.join(timeout=10)  # a bound, not a wait: it returns at once unless held up
        assert not counter.is_alive(), "held up by another thread's round trip to the shared cache"
        assert counts[0][0] == 1  # counted here (the event in flight is in no count yet)
    finally:
        release.set()
        sender.join()
    assert ratelimit.window_count_batched("busy", 3600, 1000)[0] == 3  # nothing lost
