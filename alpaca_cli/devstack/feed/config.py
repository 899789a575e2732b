"""Settings of the Alpaca stream server, and the synthetic market's symbol universe.

Defaults mirror Alpaca's production stream where the spec states a value (10 s auth timeout,
one connection per key) and otherwise favour a quiet developer machine (100 messages/s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_SYMBOLS",
    "UNIVERSE",
    "FeedConfig",
    "SymbolSpec",
]


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """How one synthetic instrument trades: its price level, tick and typical order size.

    Levels are rough 2025-26 market levels, so books and trades look plausible next to a real
    recording; they are not meant to track the real market.
    """

    symbol: str
    price: float
    """Starting mid price; the generator mean-reverts towards it."""
    tick: float
    """Price increment; every generated price is a whole number of ticks."""
    size: float
    """Typical size of one order book level or trade, in the base asset."""


UNIVERSE: dict[str, SymbolSpec] = {
    spec.symbol: spec
    for spec in (
        SymbolSpec("BTC/USD", 95_000.0, 0.01, 0.4),
        SymbolSpec("ETH/USD", 3_400.0, 0.01, 4.0),
        SymbolSpec("SOL/USD", 180.0, 0.001, 40.0),
        SymbolSpec("DOGE/USD", 0.32, 0.00001, 40_000.0),
        SymbolSpec("AVAX/USD", 35.0, 0.001, 150.0),
        SymbolSpec("LTC/USD", 100.0, 0.001, 40.0),
        SymbolSpec("BCH/USD", 450.0, 0.01, 8.0),
        SymbolSpec("LINK/USD", 20.0, 0.001, 300.0),
        SymbolSpec("UNI/USD", 12.0, 0.001, 400.0),
        SymbolSpec("AAVE/USD", 300.0, 0.01, 15.0),
        SymbolSpec("DOT/USD", 7.0, 0.0001, 900.0),
        SymbolSpec("XRP/USD", 2.3, 0.00001, 5_000.0),
        SymbolSpec("SHIB/USD", 0.000022, 0.000000001, 400_000_000.0),
        SymbolSpec("PEPE/USD", 0.000012, 0.000000001, 800_000_000.0),
        SymbolSpec("MKR/USD", 1_600.0, 0.01, 3.0),
        SymbolSpec("CRV/USD", 0.8, 0.0001, 8_000.0),
        SymbolSpec("BAT/USD", 0.25, 0.00001, 15_000.0),
        SymbolSpec("GRT/USD", 0.2, 0.00001, 25_000.0),
        SymbolSpec("SUSHI/USD", 1.2, 0.0001, 4_000.0),
        SymbolSpec("XTZ/USD", 1.1, 0.0001, 4_000.0),
        SymbolSpec("YFI/USD", 8_000.0, 0.01, 0.6),
        SymbolSpec("USDT/USD", 1.0, 0.0001, 50_000.0),
        SymbolSpec("USDC/USD", 1.0, 0.0001, 50_000.0),
        SymbolSpec("ETH/BTC", 0.036, 0.000001, 4.0),
        SymbolSpec("BTC/USDT", 95_000.0, 0.01, 0.4),
        SymbolSpec("ETH/USDT", 3_400.0, 0.01, 4.0),
    )
}
"""Every symbol the synthetic market can generate, by name."""

DEFAULT_SYMBOLS: tuple[str, ...] = tuple(UNIVERSE)
"""The default universe; starts with the five symbols of ``settings/alpaca.json``."""


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """Everything ``alpaca-md dev feed`` can be told.

    Parameters:
        host, port: where to listen; port 0 picks a free port (read it back from
            :attr:`FeedServer.port <alpaca_cli.devstack.feed.server.FeedServer.port>`).
        key, secret: when both are set only that pair authenticates; otherwise any pair of
            non-empty strings does, as a stand-in for "a valid key".
        auth_timeout: seconds a client has to authenticate before ``404 auth timeout``.
        symbol_limit: most symbols one channel may hold (``*`` counts as the whole universe);
            ``None`` means no limit. A subscribe that would exceed it gets 405 and changes nothing.
        max_connections_per_key: authenticated connections one key may hold at a time (406).
        rate: data messages per second per connection, across all its trade, quote and order
            book subscriptions. Bars are extra: they follow the clock (``bar_interval``).
        seed: seeds the synthetic market; each connection replays the same sequence.
        replay: an NDJSON recording to replay instead of the synthetic market.
        drop_after: abort every connection (no close frame) this many seconds after it opened.
        symbols: the universe ``*`` expands to (the replay's own symbols when replaying).
        tick: seconds between batches; each batch of data goes out in as few frames as fit.
        bar_interval: seconds per bar; 60 gives minute bars (``b``), as on Alpaca.
        book_depth: price levels per side of each synthetic order book.
        max_frame_messages: most data messages packed into one frame.
        seq_field: when set, every data message also carries this extra key holding its
            per-connection sequence number (1, 2, 3 ...). Off by default: real Alpaca messages
            have no such key (clients must skip unknown keys, so it is harmless when on).
        slow_client_after: when set, a frame that waits this many seconds for the client to
            read it counts as an outbound buffer overflow: ``407 slow client``, then a close
            (code 1008). ``None`` (the default) lets a slow client slow its own stream down.
        compression: accept permessage-deflate when a client offers it, as Alpaca does (the
            default). Off only for tests that read raw frames off the socket.
    """

    host: str = "127.0.0.1"
    port: int = 0
    key: str | None = None
    secret: str | None = field(default=None, repr=False)
    auth_timeout: float = 10.0
    symbol_limit: int | None = None
    max_connections_per_key: int = 1
    rate: float = 100.0
    seed: int = 0
    replay: Path | None = None
    drop_after: float | None = None
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    tick: float = 0.01
    bar_interval: float = 60.0
    book_depth: int = 20
    max_frame_messages: int = 500
    seq_field: str | None = None
    slow_client_after: float | None = None
    compression: bool = True

    def __post_init__(self) -> None:
        if (self.key is None) != (self.secret is None):
            raise ValueError("key and secret go together: give both or neither")
        if self.auth_timeout <= 0:
            raise ValueError("auth_timeout must be positive")
        if self.rate < 0:
            raise ValueError("rate must be zero or positive")
        if self.max_connections_per_key < 1:
            raise ValueError("max_connections_per_key must be at least 1")
        if self.symbol_limit is not None and self.symbol_limit < 1:
            raise ValueError("symbol_limit must be at least 1")
        if self.drop_after is not None and self.drop_after <= 0:
            raise ValueError("drop_after must be positive")
        if self.slow_client_after is not None and self.slow_client_after <= 0:
            raise ValueError("slow_client_after must be positive")
        if self.tick <= 0 or self.bar_interval <= 0:
            raise ValueError("tick and bar_interval must be positive")
        if self.book_depth < 2 or self.max_frame_messages < 1:
            raise ValueError("book_depth must be at least 2 and max_frame_messages at least 1")
        unknown = [s for s in self.symbols if s not in UNIVERSE]
        if unknown and self.replay is None:
            raise ValueError(
                f"unknown symbols {unknown}; the synthetic market knows {', '.join(UNIVERSE)}"
            )
