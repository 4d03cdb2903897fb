"""Limits on what the registry stores (SPEC §12), and the one check every stored value passes.

A value that passed json_problem() can be stored on SQLite and PostgreSQL alike, pickled into the
cache, encoded into any answer and shown in the admin: no stored value can make a read fail.
"""

from typing import Any

MAX_DEPTH = 32  # arrays and objects inside one another, in one value
MAX_VALUE_BYTES = 256 * 1024  # one value, as compact JSON
MAX_LAYER_BYTES = 8 * 1024 * 1024  # a layer's current entries together (values as JSON, secrets as ciphertext)
MAX_REQUEST_BYTES = 12 * 1024 * 1024  # an API request body (DATA_UPLOAD_MAX_MEMORY_SIZE): 413 beyond


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (a lone UTF-16 surrogate, or NUL, which PostgreSQL refuses), or None."""
    if "\x00" in text:
        return "text may not contain the NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text must be valid Unicode (it holds a lone UTF-16 surrogate, e.g. \\ud800)"
    return None


def json_problem(value: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a JSON value breaks the limits (too deep, bad text, not JSON), or None. Iterative: a
    value nested thousands deep is refused, not a RecursionError."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, (list, tuple, dict)):
            if depth >= max_depth:
                return f"the value is nested more than {max_depth} deep (arrays and objects inside one another)"
            if isinstance(item, dict):
                for key, inner in item.items():
                    if not isinstance(key, str):
                        return "object keys must be strings"
                    problem = text_problem(key)
                    if problem:
                        return problem
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)
        elif not (item is None or isinstance(item, (bool, int, float))):
            return f"{type(item).__name__} is not a JSON value"
    return None


def suspicious_json_text(text: str) -> bool:
    """Whether stored JSON text may hold something json_problem() refuses (cheap: C-speed counts)."""
    return text.count("[") + text.count("{") > MAX_DEPTH or "\\ud" in text.lower() or "\\u0000" in text
