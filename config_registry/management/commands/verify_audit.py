"""Verify the audit log's keyed hash chain and name the first broken link."""

from django.core.management.base import BaseCommand, CommandError

from config_registry.audit import audit_head, audit_verify, parse_head


class Command(BaseCommand):
    help = (
        "Verify the keyed hash chain of the audit log; exits non-zero at the first broken link. "
        "Prints the head (SEQ:HASH) to record outside the database."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            metavar="SEQ:HASH",
            help="a head recorded earlier outside the database (this command's output, or an "
            "'audit head' log line): it must still be in the chain, unchanged",
        )

    def handle(self, *args, expect_head=None, **options):
        try:
            expected = parse_head(expect_head) if expect_head else None
        except ValueError as error:
            raise CommandError(str(error)) from None
        verified, broken = audit_verify(expected)
        if broken:
            raise CommandError(f"Audit chain broken at {broken} ({verified} event(s) before it verified).")
        self.stdout.write(f"Audit chain intact: {verified} event(s) verified.")
        self.stdout.write(f"head: {audit_head()}")
