"""The migration report (SPEC §10): every read of the environment in a Python codebase, and whether the
registry already holds the key each maps to. Exit 1 while reads remain, for CI."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config_registry import selectors
from config_registry.envfile import key_for, known_by_env_name
from config_registry.envscan import scan


class Command(BaseCommand):
    help = (
        "List every read of the environment under PATH (os.environ, os.getenv, django-environ, python-dotenv, "
        "pydantic settings), with file, line, variable and the registry key it maps to; exit 1 while any remain."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="a directory or a Python file")
        parser.add_argument("--format", choices=["table", "json"], default="table")
        parser.add_argument("--exclude", action="append", default=[], metavar="DIR", help="a directory name to skip")
        parser.add_argument("--prefix", default="", help="the variables' prefix, removed before mapping to keys")
        parser.add_argument(
            "--strict",
            action="store_true",
            help='also list os.environ.setdefault("DJANGO_SETTINGS_MODULE", "…"), Django\'s naming of the settings '
            "module (not configuration: left out by default, and counted)",
        )

    def handle(self, *args, path, format, exclude, prefix, strict, **options):
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        known = selectors.known_keys()
        by_name = known_by_env_name(known)
        rows, conventions = [], 0
        for read in scan(path, exclude):
            if read.settings_module_default and not strict:
                conventions += 1
                continue
            key = None
            if read.variable:
                bare = read.variable[len(prefix) :] if prefix and read.variable.startswith(prefix) else read.variable
                key = key_for(bare, by_name)
            rows.append(
                {
                    "file": str(read.path),
                    "line": read.line,
                    "variable": read.variable,
                    "read": read.how,
                    "key": key,
                    "in_registry": (key in known) if key else None,
                }
            )
        if format == "json":
            held = sum(1 for row in rows if row["in_registry"])
            answer = {"reads": rows, "total": len(rows), "in_registry": held, "django_settings_module": conventions}
            self.stdout.write(json.dumps(answer, indent=2))
        else:
            self._table(path, rows)
            if conventions:
                self.stdout.write(
                    f'Left out: {conventions} os.environ.setdefault("DJANGO_SETTINGS_MODULE", …) line(s), '
                    "Django's naming of its settings module (--strict lists them)."
                )
        if rows:
            raise SystemExit(1)

    def _table(self, path: Path, rows: list[dict]) -> None:
        if not rows:
            self.stdout.write(f"No read of the environment under {path}: the migration is complete.")
            return
        table = [
            (
                f"{row['file']}:{row['line']}",
                row["variable"] or "(not a literal)",
                row["read"],
                row["key"] or "-",
                {True: "yes", False: "no", None: "-"}[row["in_registry"]],
            )
            for row in rows
        ]
        header = ("WHERE", "VARIABLE", "READ", "KEY", "IN REGISTRY")
        widths = [max(len(line[column]) for line in [header, *table]) for column in range(4)]
        for line in [header, *table]:
            padded = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
            self.stdout.write("  ".join([*padded, line[4]]))
        held = sum(1 for row in rows if row["in_registry"])
        files = len({row["file"] for row in rows})
        self.stdout.write(
            f"{len(rows)} read(s) of the environment in {files} file(s); "
            f"the registry holds the key of {held} of them. Move each to the registry (import_env), then remove it."
        )
