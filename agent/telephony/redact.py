"""Phone numbers out of the worker's logs. livekit-sip names a caller's room and identity after their number
(`call_+15550100123_x7Yz`, `sip_+15550100123`) and livekit-agents logs both at INFO (as extra fields of its
records); a filter on the process's log handlers masks every number in a record's message, arguments and
extra fields before it is written."""

from __future__ import annotations

import logging
import re
from typing import Any

from .call import masked

NUMBER = re.compile(r"\+\d{6,15}|(?<=sip_)\d{6,15}|(?<=call_)\d{6,15}")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    return NUMBER.sub(lambda m: masked(m.group(0)), text)


def _clean(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactNumbers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(a) for a in record.args)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD:
                record.__dict__[key] = _clean(value)
        return True


def install() -> None:
    """Add the filter to every handler of the root logger (idempotent; call once logging is set up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactNumbers) for f in handler.filters):
            handler.addFilter(RedactNumbers())
