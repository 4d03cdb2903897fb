"""Log hygiene: chat tickets (and any token in a query string) never reach a log line."""

import json
import logging
import re
import time
from urllib.parse import unquote_plus

# Query parameters the server accepts as a credential (after percent-decoding their names).
CREDENTIAL_PARAMETERS = {"ticket", "token", "access_token"}
QUERY_PARAMETER = re.compile(r"(?P<name>[^?&;=\s\"'#/]+)=(?P<value>[^&;\s\"'#]*)")


def _redacted(match: re.Match) -> str:
    name = unquote_plus(match["name"])
    if name.strip().lower() in CREDENTIAL_PARAMETERS and match["value"]:
        return f"{match['name']}=[redacted]"
    return match[0]


class RedactSecrets(logging.Filter):
    """Rewrites a record's message with query-string credentials replaced by [redacted]. The ASGI
    server logs every WebSocket handshake with its path and query string; the chat's ticket is
    in that query string. Names are compared percent-decoded (?tick%65t= is ?ticket= to the
    server), so no spelling of a credential passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = QUERY_PARAMETER.sub(_redacted, message) if "=" in message else message
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (time, level, logger, message, exception) for log collectors.
    Runs after RedactSecrets, so what it writes is already redacted."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
