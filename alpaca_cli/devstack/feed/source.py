"""What the server asks of a data source: the synthetic market or a replayed recording.

Messages are the shared codec's dataclasses (:mod:`alpaca_cli.alpaca.messages`), so the server
encodes them with the same :func:`~alpaca_cli.alpaca.codec.encode_frame` the client's decoder
mirrors. A source hands its messages over: the server may set their ``extra`` before encoding.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

from alpaca_cli.alpaca.messages import DataMessage, OrderBookUpdate
from alpaca_cli.devstack.feed.session import Targets

__all__ = ["DataSource", "Message"]

Message: TypeAlias = DataMessage


class DataSource(Protocol):
    """One connection's view of a market. Called from one task only; never blocks."""

    def snapshot(self, symbol: str, now_ns: int) -> OrderBookUpdate:
        """The whole order book of ``symbol`` (``r: true``); deltas follow from here on."""
        ...

    def forget(self, symbol: str) -> None:
        """The client no longer receives ``symbol``'s book: stop tracking its deltas."""
        ...

    def generate(self, count: int, targets: Targets, now_ns: int) -> list[Message]:
        """Up to ``count`` rate-paced messages for ``targets``, timestamped up to ``now_ns``."""
        ...

    def bars(self, targets: Targets, now_ns: int) -> list[Message]:
        """Clock-driven messages (bars) that fell due by ``now_ns``."""
        ...
