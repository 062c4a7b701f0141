"""Stdlib `logging` into twisted.logger: one log, one observer, one level filter.

Libraries the daemon uses (and `directory/syncrepl.py`) log with `logging`; without a bridge
their records are dropped or reach stderr as bare text.  `install` puts one handler on the
root logger that re-emits each record as a twisted.logger event in the record's logger name as
namespace, with the level mapped, so `--log-level` and `--log-format` apply to them too.
"""

from __future__ import annotations

import logging

from twisted.logger import Logger, LogLevel

LEVELS = ((logging.CRITICAL, LogLevel.critical), (logging.ERROR, LogLevel.error),
          (logging.WARNING, LogLevel.warn), (logging.INFO, LogLevel.info))


def twisted_level(levelno: int) -> LogLevel:
    """The twisted.logger level of a stdlib level (custom levels round down)."""
    for threshold, level in LEVELS:
        if levelno >= threshold:
            return level
    return LogLevel.debug


class TwistedHandler(logging.Handler):
    """Each stdlib record becomes one twisted.logger event (thread-safe: the global log
    publisher may be called from any thread)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            Logger(namespace=record.name).emit(twisted_level(record.levelno), "{text}",
                                               text=text, stdlib_logger=record.name)
        except Exception:
            self.handleError(record)


def install(level: int = logging.INFO) -> TwistedHandler:
    """Route the root logger to twisted.logger (once; a second call returns the same handler)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, TwistedHandler):
            return handler
    handler = TwistedHandler()
    root.addHandler(handler)
    root.setLevel(level)
    return handler


__all__ = ["TwistedHandler", "install", "twisted_level"]
