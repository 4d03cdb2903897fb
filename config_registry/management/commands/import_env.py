"""Import a .env file (or an `env` dump) into one new version of a layer (SPEC §10)."""

import sys

from django.core.management.base import BaseCommand, CommandError

from config_registry import changes, selectors
from config_registry.audit import CLI_ACTOR
from config_registry.diff import diff_as_dict
from config_registry.envfile import env_plan
from config_registry.exceptions import InvalidInput, NotFound, VersionConflict
from config_registry.validation import parse_layer_ref


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sign, key = item.partition("=")
        if not sign or not name or not key:
            raise CommandError(f"{option} wants NAME=key, not {item!r}")
        pairs[name] = key
    return pairs


class Command(BaseCommand):
    help = (
        "Import a .env file (python-dotenv's format) or an environment dump into one new version of a layer: "
        "DATABASE_PASSWORD becomes database.password, values become JSON types where unambiguous, and names "
        "with PASSWORD, SECRET, TOKEN, KEY or CREDENTIAL are stored as secrets (never printed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the .env file ('-' for stdin)")
        parser.add_argument("--layer", required=True, help="global, environment:NAME, service:NAME, …")
        parser.add_argument("--prefix", default="", help="import only NAMEs with this prefix, the prefix removed")
        parser.add_argument("--map", action="append", default=[], metavar="NAME=key", help="NAME's key")
        parser.add_argument("--secret", action="append", default=[], metavar="NAME", help="store NAME as a secret")
        parser.add_argument("--base", type=int, help="the version this import is based on (default: the current)")
        parser.add_argument("--comment", default="", help="the version's comment")
        parser.add_argument("--dry-run", action="store_true", help="print what would change, publish nothing")

    def handle(self, *args, file, layer, prefix, map, secret, base, comment, dry_run, **options):
        try:
            parse_layer_ref(layer)
            with open(file, encoding="utf-8") if file != "-" else sys.stdin as handle:
                text = handle.read()
        except InvalidInput as error:
            raise CommandError(f"--layer: {'; '.join((error.errors or {}).values()) or error}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read {file}: {error}") from None
        names = _pairs(map, "--map")
        plan = env_plan(text, known_keys=selectors.known_keys(), prefix=prefix, names=names, secret_names=secret)
        for note in plan.notes:
            self.stderr.write(note)
        if not plan.entries:
            raise CommandError(f"{file} holds no variable to import" + (f" with the prefix {prefix}" if prefix else ""))
        try:
            current = selectors.layer_get(layer)
        except NotFound:
            current = None
        planned = selectors.env_import_diff(current, plan.entries, plan.secrets)
        self._report(layer, current, plan, planned)
        if dry_run:
            self.stdout.write("Dry run: nothing published.")
            return
        if not planned:
            self.stdout.write(f"{layer} already holds these values: nothing published.")
            return
        try:
            submitted = changes.env_import_submit(
                ref=layer,
                entries=plan.entries,
                secrets=plan.secrets,
                actor=CLI_ACTOR,
                base_version=base,
                comment=comment or f"imported from {file}",
            )
        except VersionConflict as conflict:
            raise CommandError(f"{conflict}: re-run with --base {conflict.current} after a look (--dry-run)") from None
        except InvalidInput as error:
            details = "; ".join(f"{key}: {problem}" for key, problem in (error.errors or {}).items())
            raise CommandError(f"{error}: {details}" if details else str(error)) from None
        if submitted.change is not None:
            required = submitted.change.layer.required_approvals
            self.stdout.write(
                f"{layer} requires {required} approval(s): submitted as change request #{submitted.change.pk}, "
                "applied once someone else approves it (the admin's Change requests, or "
                f"POST /api/v1/changes/{submitted.change.pk}/approve). Nothing is published yet."
            )
            return
        self.stdout.write(f"Published {layer} version {submitted.version.number}.")

    def _report(self, layer, current, plan, changes) -> None:
        where = f"{layer} version {current.current_version}" if current else f"{layer} (a new layer)"
        self.stdout.write(f"{len(plan.entries)} variable(s) read; against {where}:")
        shown = diff_as_dict(changes)
        for kind, sign in (("added", "+"), ("changed", "~"), ("removed", "-")):
            for key, change in shown[kind].items():
                name = plan.names.get(key, "")
                if change["secret"]:
                    self.stdout.write(f"  {sign} {key} (secret, from {name}): {kind}")
                elif kind == "changed":
                    self.stdout.write(f"  {sign} {key} (from {name}): {change['before']!r} → {change['after']!r}")
                else:
                    self.stdout.write(f"  {sign} {key} (from {name}) = {change['after']!r}")
        unchanged = len(plan.entries) - len(changes)
        if unchanged:
            self.stdout.write(f"  {unchanged} unchanged")
