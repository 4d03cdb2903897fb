"""Print the resolved configuration of one context as JSON."""

import json
from datetime import UTC

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config_registry.audit import CLI_ACTOR
from config_registry.exceptions import InvalidInput, NotFound, SecretUndecryptable
from config_registry.selectors import config_resolve, context_warnings, registry_position, revision_at
from config_registry.services import config_reveal


class Command(BaseCommand):
    help = "Resolve configuration for (environment, service, user); secrets masked unless --reveal-secrets."

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True)
        parser.add_argument("--service", required=True)
        parser.add_argument("--user", default=None, help="username (omit for the service level)")
        parser.add_argument("--explain", action="store_true", help="show each key's layer and version")
        parser.add_argument("--reveal-secrets", action="store_true", help="show secret values (audited)")
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--revision", type=int, help="resolve as at this past revision")
        when.add_argument("--at", help="ISO 8601 time: resolve as at the last revision at or before it")

    def handle(self, *args, environment, service, user, explain, reveal_secrets, revision, at, **options):
        try:
            if at is not None:
                revision = revision_at(_moment(at))
            context = {"environment": environment, "service": service, "user": user, "revision": revision}
            resolved = config_reveal(**context, actor=CLI_ACTOR) if reveal_secrets else config_resolve(**context)
        except (InvalidInput, NotFound, SecretUndecryptable) as error:
            raise CommandError(str(error)) from None
        for warning in context_warnings(environment, service, registry_position()):
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(json.dumps(resolved.as_dict(explain=explain), indent=2, sort_keys=True))


def _moment(text: str):
    moment = parse_datetime(text)
    if moment is None:
        raise CommandError(f"--at {text!r} is not an ISO 8601 time (e.g. 2026-12-01T09:30:00Z)")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
