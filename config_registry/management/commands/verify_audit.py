"""Verify the audit log's hash chain and name the first broken link."""

from django.core.management.base import BaseCommand, CommandError

from config_registry.audit import audit_verify


class Command(BaseCommand):
    help = "Verify the hash chain of the audit log; exits non-zero at the first broken link."

    def handle(self, *args, **options):
        verified, broken = audit_verify()
        if broken:
            raise CommandError(f"Audit chain broken at {broken} ({verified} event(s) before it verified).")
        self.stdout.write(f"Audit chain intact: {verified} event(s) verified.")
