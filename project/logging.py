"""Log hygiene: chat tickets (and any token in a query string) never reach a log line."""

import logging
import re

SECRET_QUERY_PARAMETERS = re.compile(r"((?:ticket|token|access_token)=)[^&\s\"']+", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message with query-string credentials replaced by [redacted]. The ASGI
    server logs every WebSocket handshake with its path and query string; the chat's ticket is
    in that query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = SECRET_QUERY_PARAMETERS.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
