"""Logging for the embedded platform's processes (``dev up``, ``dev feed``, ``run --embedded``).

Why a module of its own: at DEBUG the ``websockets`` library logs every frame it sends and
receives, and the WSM's upstream socket carries Alpaca's ``auth`` message with the secret. So
however many ``-v`` the operator gives, the ``websockets.*`` loggers stay at INFO or above, and
the handlers installed here drop any of their records below INFO that still get through (a
child logger someone set to DEBUG explicitly).
"""

from __future__ import annotations

import logging
import sys
from typing import Final

__all__ = [
    "WIRE_LOGGER",
    "WireFrameFilter",
    "configure_level",
    "configure_logging",
    "pin_wire_loggers",
]

WIRE_LOGGER: Final = "websockets"
"""Root of the loggers whose DEBUG output contains raw frames (secrets included)."""
_FLOOR: Final = logging.INFO


def _is_wire(name: str) -> bool:
    return name == WIRE_LOGGER or name.startswith(WIRE_LOGGER + ".")


class WireFrameFilter(logging.Filter):
    """Drops ``websockets.*`` records below INFO: the frame dumps."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= _FLOOR or not _is_wire(record.name)


def pin_wire_loggers() -> None:
    """Keep ``websockets`` and every ``websockets.*`` logger at INFO or above.

    ``websockets`` decides per connection whether to format frame dumps
    (``logger.isEnabledFor(DEBUG)``), so with these levels the dumps are never even built.
    """
    root = logging.getLogger(WIRE_LOGGER)
    if root.level < _FLOOR:  # NOTSET (0) included: it would inherit a DEBUG root
        root.setLevel(_FLOOR)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not (_is_wire(name) and isinstance(logger, logging.Logger)):
            continue  # a PlaceHolder, or another library's logger
        if logging.NOTSET < logger.level < _FLOOR:
            logger.setLevel(_FLOOR)


def configure_logging(verbose: int) -> None:
    """``dev up``'s stderr logging: WARNING, ``-v`` INFO, ``-vv`` DEBUG, never frame dumps."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    configure_level(level)


def configure_level(level: int) -> None:
    """Stderr logging at ``level`` for any devstack process, never frame dumps.

    The feed child (:mod:`alpaca_cli.devstack.feed.process`) calls this with the level its
    parent passes down: it is the *server* end of the Alpaca socket, so its ``websockets``
    logger would otherwise dump the client's ``auth`` frame (key and secret) at ``-vv``.
    """
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    pin_wire_loggers()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, WireFrameFilter) for f in handler.filters):
            handler.addFilter(WireFrameFilter())
