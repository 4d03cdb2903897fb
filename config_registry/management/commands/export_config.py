"""Export the whole registry as JSON (secrets as ciphertext unless --decrypt-secrets)."""

import json

from django.core.management.base import BaseCommand

from config_registry.audit import CLI_ACTOR
from config_registry.backup import registry_export


class Command(BaseCommand):
    help = "Export layers with every version, and key definitions, as JSON. Secrets stay ciphertext."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
        parser.add_argument(
            "--decrypt-secrets", action="store_true", help="write secrets in plain text (audited; keep the file safe)"
        )

    def handle(self, *args, output, decrypt_secrets, **options):
        data = registry_export(decrypt_secrets=decrypt_secrets, actor=CLI_ACTOR)
        text = json.dumps(data, indent=2, sort_keys=True)
        if output == "-":
            self.stdout.write(text)
        else:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            self.stderr.write(f"Exported {len(data['layers'])} layer(s) to {output}.")
