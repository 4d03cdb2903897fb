#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import sys


def main() -> None:
    from django.core.management import execute_from_command_line

    argv = sys.argv if len(sys.argv) > 1 else [*sys.argv, "help"]
    # Name the settings module the way Django's --settings does, so no module but
    # project/settings.py touches the environment.
    if not any(arg == "--settings" or arg.startswith("--settings=") for arg in argv):
        argv = [*argv, "--settings=project.settings"]
    execute_from_command_line(argv)


if __name__ == "__main__":
    main()
