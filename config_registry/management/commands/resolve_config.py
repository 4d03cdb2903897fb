"""Print the resolved configuration of one context as JSON."""

import json

from django.core.management.base import BaseCommand, CommandError

from config_registry.audit import CLI_ACTOR
from config_registry.exceptions import InvalidInput, NotFound, SecretUndecryptable
from config_registry.selectors import config_resolve
from config_registry.services import config_reveal


class Command(BaseCommand):
    help = "Resolve configuration for (environment, service, user); secrets masked unless --reveal-secrets."

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True)
        parser.add_argument("--service", required=True)
        parser.add_argument("--user", default=None, help="username (omit for the service level)")
        parser.add_argument("--explain", action="store_true", help="show each key's layer and version")
        parser.add_argument("--reveal-secrets", action="store_true", help="show secret values (audited)")

    def handle(self, *args, environment, service, user, explain, reveal_secrets, **options):
        try:
            context = {"environment": environment, "service": service, "user": user}
            resolved = config_reveal(**context, actor=CLI_ACTOR) if reveal_secrets else config_resolve(**context)
        except (InvalidInput, NotFound, SecretUndecryptable) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(resolved.as_dict(explain=explain), indent=2, sort_keys=True))
