"""Import a registry export into this (empty) registry, all or nothing."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from config_registry.audit import CLI_ACTOR
from config_registry.backup import registry_import
from config_registry.exceptions import InvalidInput


class Command(BaseCommand):
    help = "Import an export_config file: layers with their full history and key definitions."

    def add_arguments(self, parser):
        parser.add_argument("file", help="the export file ('-' for stdin)")
        parser.add_argument(
            "--allow-missing-users",
            action="store_true",
            help="import user layers whose user does not exist here (named on stderr): whoever "
            "is created with that name later gets them",
        )

    def handle(self, *args, file, allow_missing_users=False, **options):
        try:
            with open(file, encoding="utf-8") if file != "-" else sys.stdin as handle:
                data = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            raise CommandError(f"cannot read {file}: {error}") from None
        try:
            counts = registry_import(data=data, actor=CLI_ACTOR, allow_missing_users=allow_missing_users)
        except InvalidInput as error:
            raise CommandError(str(error)) from None
        for name in counts["missing_users"]:
            self.stderr.write(f"Imported layer user:{name}, but there is no user {name!r} here yet.")
        self.stdout.write(
            f"Imported {counts['layers']} layer(s), {counts['versions']} version(s), "
            f"{counts['key_definitions']} key definition(s)."
        )
