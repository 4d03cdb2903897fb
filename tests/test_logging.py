"""Log lines: tickets and tokens redacted, JSON for collectors."""

import json
import logging
import sys

from project.logging import JsonFormatter, RedactSecrets


def _record(message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, message, args, exc_info)


def test_redact__ticket_and_token_in_a_handshake_line__replaced():
    record = _record(
        '%s - "WebSocket %s" [accepted]',
        "127.0.0.1:5000",
        "/ws/chat/lobby/?ticket=eyJhbGciOiJIUzI1NiJ9.e30.sig&x=1&token=crt_abc",
    )
    assert RedactSecrets().filter(record)
    assert (
        record.getMessage()
        == '127.0.0.1:5000 - "WebSocket /ws/chat/lobby/?ticket=[redacted]&x=1&token=[redacted]" [accepted]'
    )


def test_json_formatter__one_object_per_line_with_the_exception():
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed for %s", "alice", exc_info=sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["level"], entry["logger"], entry["message"]) == ("INFO", "uvicorn.error", "failed for alice")
    assert entry["time"].endswith("Z") and "ValueError: boom" in entry["exception"]
