"""The API's JSON parser: DRF's, with bodies it cannot take answered 400 (never a 500)."""

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from ..exceptions import InvalidInput
from ..limits import MAX_DEPTH, text_problem


class SafeJSONParser(JSONParser):
    """Refuses, as a 400 naming the problem, bodies nested too deep for the parser and bodies
    holding a lone UTF-16 surrogate (neither database can store one; no answer could quote it)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(
                f"JSON parse error - the body is nested too deep; values may nest at most {MAX_DEPTH} deep"
            ) from None
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            path = _surrogate_path(data)
            raise InvalidInput(
                "invalid request: strings must be valid Unicode", {path: "holds a lone UTF-16 surrogate (e.g. \\ud800)"}
            ) from None
        except (RecursionError, ValueError):
            raise ParseError(f"JSON parse error - values may nest at most {MAX_DEPTH} deep") from None
        return data


def _surrogate_path(data) -> str:
    """The dotted path of the first string (or object key) that is not valid Unicode, e.g. set.a.b."""
    stack = [(data, "")]
    while stack:
        item, path = stack.pop()
        items = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, inner in items:
            where = f"{path}.{key}" if path else str(key)
            if text_problem(str(key)) or (isinstance(inner, str) and text_problem(inner)):
                return where.encode("utf-8", "backslashreplace").decode("utf-8")
            stack.append((inner, where))
    return "request"
