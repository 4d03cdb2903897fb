"""Which token reads which context, and so which keys are still read: approximate counters kept in each
process and written at most once a USAGE_FLUSH_SECONDS per process (one upsert per context read meanwhile),
never a write per request. What was counted since the last write is lost if a process dies."""

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .exceptions import InvalidInput, NotFound
from .memory import forgotten_by_memos_clear
from .models import ContextUsage
from .selectors import config_view, registry_position

logger = logging.getLogger(__name__)


class UsageTally:
    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Counter = Counter()
        self._last: dict[tuple, datetime] = {}
        self._flushed_at = time.monotonic()

    def served(self, token_id: int, environment: str, service: str, user: str | None, *, flush: bool = True) -> bool:
        """Count one answer; once the interval has passed, the answering thread writes the counts (an
        event loop passes flush=False and, told True, writes them from a database thread)."""
        context = (token_id, environment, service, user or "")
        with self._lock:
            self._counts[context] += 1
            self._last[context] = timezone.now()
            due = time.monotonic() - self._flushed_at >= settings.USAGE_FLUSH_SECONDS
        if due and flush:
            self.flush()
        return due

    def flush(self) -> int:
        """Write what was counted since the last flush; returns how many contexts it wrote."""
        with self._lock:
            counts, last, self._counts, self._last = self._counts, self._last, Counter(), {}
            self._flushed_at = time.monotonic()
        try:
            with transaction.atomic():
                for context, count in sorted(counts.items()):
                    keys = dict(zip(("token_id", "environment", "service", "user"), context, strict=True))
                    rows = ContextUsage.objects.filter(**keys)
                    if rows.update(served=F("served") + count, last_served_at=last[context]):
                        continue
                    try:
                        with transaction.atomic():  # another process may create the same row meanwhile
                            ContextUsage.objects.create(**keys, served=count, last_served_at=last[context])
                    except IntegrityError:
                        rows.update(served=F("served") + count, last_served_at=last[context])
        except DatabaseError as error:  # approximate by design: counted again from now on
            logger.warning("could not write %d usage counters: %s", len(counts), error)
            return 0
        return len(counts)

    def clear(self) -> None:
        with self._lock:
            self._counts, self._last = Counter(), {}


USAGE = forgotten_by_memos_clear(UsageTally())


@dataclass
class KeyUse:
    last_read_at: datetime
    served: int
    tokens: set[str]


def key_usage(*, since: datetime | None = None) -> dict[str, KeyUse]:
    """For each key some counted context serves, when it was last served, how often, and to which tokens
    (a context serves the keys of its resolution now)."""
    rows = ContextUsage.objects.select_related("token").order_by("environment", "service", "user")
    if since is not None:
        rows = rows.filter(last_served_at__gte=since)
    uses: dict[str, KeyUse] = {}
    position = registry_position()
    for row in rows:
        context = {"environment": row.environment, "service": row.service, "user": row.user or None}
        try:
            keys = config_view(**context, position=position).values  # kept per revision: pages reuse them
        except (NotFound, InvalidInput):  # a user deleted since, or a name no longer valid
            continue
        for key in keys:
            use = uses.get(key)
            if use is None:
                uses[key] = KeyUse(row.last_served_at, row.served, {row.token.name})
            else:
                use.last_read_at, use.served = max(use.last_read_at, row.last_served_at), use.served + row.served
                use.tokens.add(row.token.name)
    return uses


def recently(days: int) -> datetime:
    return timezone.now() - timedelta(days=days)
