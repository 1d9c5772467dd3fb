"""Log records as text for people or as JSON for log collectors (VOICE_AGENT_LOG_FORMAT), each tagged with the
call it belongs to.

`build_session` binds the call (`bind`) in a context variable; the tasks the session creates afterwards copy
that context, so their records carry it too. `CallFields`, a filter on the process's log handlers, copies the
call's session_id, room and participant onto each record. (A filter, not a LogRecord factory: the factory runs
before `extra=` is applied, and a record's own `extra` field of the same name would then raise.)

JSON lines use the keys of livekit-agents' own JSON formatter (timestamp, level, name, message, exc_info,
then every `extra` field), so the records of `serve`/`web` and of the worker parse alike.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal

from .call_info import CallInfo

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CALL_FIELDS = ("session_id", "room", "participant")

_CALL: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar("voice_agent_call", default=None)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

logger = logging.getLogger("voice_agent")


def bind(call: CallInfo) -> None:
    """The records logged from here on in this context (and in the tasks it creates) belong to `call`."""
    _CALL.set(call)


def call_context(call: CallInfo) -> contextvars.Context:
    """A copy of the current context with `call` bound, to run a call's tasks and callbacks in."""
    context = contextvars.copy_context()
    context.run(_CALL.set, call)
    return context


class CallFields(logging.Filter):
    """Adds the bound call's ids to each record (fields a record already has are kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = _CALL.get()
        if call is not None:
            for name in CALL_FIELDS:
                value = getattr(call, name)
                if value is not None and not hasattr(record, name):
                    setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages and tracebacks are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "name": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `setup` installs (stderr), told apart from handlers others installed."""


def setup(level: str) -> None:
    """Text records on stderr, with the call fields. Like `logging.basicConfig`, nothing changes when the root
    logger has handlers already (under pytest, say)."""
    handler = _Handler()
    handler.setFormatter(_formatter("text"))
    handler.addFilter(CallFields())
    logging.basicConfig(level=level, handlers=[handler])


def use_format(log_format: LogFormat) -> None:
    """Switch `setup`'s handler to `log_format`. In JSON, Python warnings and uncaught exceptions become
    records too, so that every line on stderr is one JSON object."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, _Handler)]
    for handler in handlers:
        handler.setFormatter(_formatter(log_format))
    if log_format == "json" and handlers:
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


def install_call_fields() -> None:
    """Add `CallFields` to every handler of the root logger (idempotent): for handlers installed by others,
    such as livekit-agents' runner in worker mode."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, CallFields) for f in handler.filters):
            handler.addFilter(CallFields())


def _log_uncaught(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
    logger.critical("uncaught exception", exc_info=(kind, error, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    error = args.exc_value or args.exc_type()
    logger.critical(
        "uncaught exception in thread %s", name, exc_info=(args.exc_type, error, args.exc_traceback)
    )
