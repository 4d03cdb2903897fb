"""Apply scheduled change requests when their time comes (SPEC §11): a long-running process."""

import logging
import os
import signal
import socket
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from config_registry.changes import changes_apply_due
from config_registry.models import SchedulerBeat
from config_registry.selectors import scheduler_beat, scheduler_silent

logger = logging.getLogger("config_registry.scheduler")


class Command(BaseCommand):
    help = (
        "Apply due change requests (approved, publish_at come), every --interval seconds, until SIGTERM/SIGINT. "
        "Several may run at once: each request is applied once (row locks, SKIP LOCKED on PostgreSQL)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between passes (default 5)")
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument(
            "--check", action="store_true", help="exit 1 unless some scheduler beat in the last minute (a probe)"
        )

    def handle(self, *args, interval, once, check, **options):
        if check:
            beat = scheduler_beat()
            if scheduler_silent(beat):
                raise CommandError("no scheduler has run in the last minute: scheduled changes are not applied")
            self.stdout.write(f"scheduler {beat.name} beat at {beat.beat_at.isoformat()}")
            return
        if interval <= 0:
            raise CommandError("--interval must be more than 0 seconds")
        # A flag, not a threading.Event: Event.set() in a signal handler can deadlock on the Event's own lock.
        stopping = {"asked": False}
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.update(asked=True))
        name, started = f"{socket.gethostname()}:{os.getpid()}", timezone.now()
        self.stdout.write(f"scheduler {name}: applying due change requests every {interval:g} s")
        self.stdout.flush()
        applied_total = 0
        while not stopping["asked"]:
            try:
                applied = changes_apply_due()
                applied_total += len(applied)
                for change in applied:
                    self.stdout.write(f"applied change request #{change.pk} to {change.target}")
                SchedulerBeat.objects.update_or_create(
                    name=name, defaults={"beat_at": timezone.now(), "started_at": started, "applied": applied_total}
                )
            except DatabaseError as error:  # the database is away: say so, try again next pass
                logger.warning("scheduler pass failed: %s", error)
                close_old_connections()
            self.stdout.flush()
            if once:
                break
            resume = time.monotonic() + interval
            while not stopping["asked"] and time.monotonic() < resume:  # wakes for a signal within 0.2 s
                time.sleep(min(0.2, max(resume - time.monotonic(), 0)))
        SchedulerBeat.objects.filter(name=name).delete()
        self.stdout.write(f"scheduler {name}: stopped ({applied_total} applied)")
