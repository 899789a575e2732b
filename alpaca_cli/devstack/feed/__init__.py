"""``alpaca-md dev feed``: an Alpaca-compatible crypto stream server for offline work.

Layers, each in a module of its own: :mod:`.session` (the session rules, pure),
:mod:`.registry` (per-key connection slots), :mod:`.market` (a seeded synthetic market),
:mod:`.replay` (an NDJSON recording instead), :mod:`.server` (WebSocket I/O, timers, pacing).
Messages are the shared codec's (:mod:`alpaca_cli.alpaca`), so client and server speak one codec.
"""

from __future__ import annotations

from alpaca_cli.devstack.feed.config import DEFAULT_SYMBOLS, UNIVERSE, FeedConfig, SymbolSpec
from alpaca_cli.devstack.feed.market import TRADE_ID_BASE, Market
from alpaca_cli.devstack.feed.registry import KeyRegistry
from alpaca_cli.devstack.feed.replay import Recording, ReplayError, ReplaySource
from alpaca_cli.devstack.feed.server import ConnectionStats, FeedServer
from alpaca_cli.devstack.feed.session import Rules, Session

__all__ = [
    "DEFAULT_SYMBOLS",
    "TRADE_ID_BASE",
    "UNIVERSE",
    "ConnectionStats",
    "FeedConfig",
    "FeedServer",
    "KeyRegistry",
    "Market",
    "Recording",
    "ReplayError",
    "ReplaySource",
    "Rules",
    "Session",
    "SymbolSpec",
]
