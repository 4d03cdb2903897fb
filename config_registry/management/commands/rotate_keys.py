"""Re-encrypt every stored secret under the primary key of CONFIG_REGISTRY_KEYS."""

from django.core.management.base import BaseCommand, CommandError

from config_registry.audit import CLI_ACTOR
from config_registry.services import keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret under the first key of CONFIG_REGISTRY_KEYS. Run it after "
        "putting a new key first; remove the old key only once this reports nothing unreadable."
    )

    def handle(self, *args, **options):
        report = keys_rotate(actor=CLI_ACTOR)
        self.stdout.write(
            f"Re-encrypted {report.rewritten} secret(s) under the primary key; {report.already_current} already were."
        )
        for error in report.unreadable:
            self.stderr.write(f"UNREADABLE: {error}")
        if report.unreadable:
            raise CommandError(
                f"{len(report.unreadable)} secret(s) could not be decrypted with any configured key and "
                "were left as they are: add the key they were encrypted with to CONFIG_REGISTRY_KEYS "
                "and run rotate_keys again, or publish new values."
            )
