"""Create a service token and print it, alone, on stdout (it is not stored and not shown again)."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from config_registry.audit import CLI_ACTOR
from config_registry.exceptions import InvalidInput
from config_registry.models import Scope
from config_registry.services import token_create


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


class Command(BaseCommand):
    help = "Create a named, scoped service token. The token is printed once, alone on stdout."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scopes", required=True, type=_names, help=f"comma-separated, from: {', '.join(Scope.values)}"
        )
        parser.add_argument(
            "--environments", type=_names, default=[], help="comma-separated environments it may read (default: all)"
        )
        parser.add_argument(
            "--services", type=_names, default=[], help="comma-separated services it may read (default: all)"
        )
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="expiry, in days from now (default: never)"
        )

    def handle(self, *args, name, scopes, environments, services, expires_in_days, **options):
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be a positive number of days")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            _, raw = token_create(
                name=name,
                scopes=scopes,
                environments=environments,
                services=services,
                expires_at=expires_at,
                actor=CLI_ACTOR,
            )
        except InvalidInput as error:
            raise CommandError(str(error)) from None
        self.stdout.write(raw)
