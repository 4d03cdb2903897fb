"""python-dotenv's parser, binding by binding: dotenv_values() (public) gives the last value of each name,
but not the lines, duplicates, unparseable lines or whether a value was quoted, which import_env reports.
`dotenv.parser.parse_stream` (python-dotenv 1.x) is not documented: tests/test_infra_adapters.py checks it
agrees with dotenv_values on every construct the import relies on."""

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

from dotenv.parser import parse_stream

QUOTED = re.compile(r"""\s*(?:export\s+)?[^=]*?=\s*['"]""")


@dataclass(frozen=True)
class EnvBinding:
    name: str | None  # None: a line python-dotenv could not parse (it skips it with a warning)
    value: str | None  # None: a name without "=" (python-dotenv's None)
    line: int
    quoted: bool  # the value was written in quotes: kept as text, never parsed to a number or boolean


def env_bindings(text: str) -> Iterator[EnvBinding]:
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            yield EnvBinding(None, None, binding.original.line, False)
        elif binding.key is not None:
            quoted = bool(QUOTED.match(binding.original.string))
            yield EnvBinding(binding.key, binding.value, binding.original.line, quoted)
