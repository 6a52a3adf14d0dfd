"""Logging filters: secrets in request paths never reach the logs."""

from __future__ import annotations

import logging
import re

# A feed URL's last segment is its secret token.
FEED_TOKEN = re.compile(r"(/sync/feeds/)[^/\s?\"]+(\.ics)")


def redact(value: object) -> object:
    return FEED_TOKEN.sub(r"\1[token]\2", value) if isinstance(value, str) else value


class RedactFeedTokens(logging.Filter):
    """Replace the token of any feed URL in a log record (Django's server log, gunicorn's access log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: redact(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(redact(value) for value in record.args)
        return True
