"""Replaying a recorded stream (``dev feed --replay FILE``) instead of the synthetic market.

The recording is NDJSON: each line is either one wire message (``{"T":"t","S":"BTC/USD",...}``),
a whole frame (a JSON array of them), or an object wrapping one message (``alpaca-md tail
--output json`` writes ``{"received_at":...,"frame":{...},"message":{...}}``). Control messages,
unknown types and blank lines are skipped; a line that is not JSON, or a data message the codec
rejects, stops the load with the file name and line number.

Each connection replays from the first line, in order, paced by ``--rate``, keeping only what it
subscribed to, and starts again at the end. Messages keep their recorded timestamps and ids.
Order books are rebuilt as the replay goes, so a client subscribing to a book mid-replay gets a
full ``r: true`` snapshot of the book as it stands at that point, then the recorded updates.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from alpaca_cli.alpaca.codec import DecodeError, decode_json
from alpaca_cli.alpaca.messages import Bar, DataMessage, Level, OrderBookUpdate, Quote, Trade
from alpaca_cli.devstack.feed.session import Targets

__all__ = ["Recording", "ReplayError", "ReplaySource", "channel_of"]

_BAR_CHANNELS = {"b": "bars", "d": "dailyBars", "u": "updatedBars"}


class ReplayError(ValueError):
    """The recording cannot be replayed; the message names the file and line."""


def channel_of(message: DataMessage) -> str:
    """The subscription channel that carries ``message``."""
    if isinstance(message, Trade):
        return "trades"
    if isinstance(message, Quote):
        return "quotes"
    if isinstance(message, OrderBookUpdate):
        return "orderbooks"
    return _BAR_CHANNELS[message.kind]


def _wire_objects(value: Any) -> Iterator[Any]:
    """The wire message objects in one parsed NDJSON line."""
    if isinstance(value, list):
        yield from value
    elif isinstance(value, dict):
        if "T" in value:
            yield value
        elif isinstance(value.get("message"), dict):  # ``tail --output json``
            yield value["message"]
        else:
            yield from (v for v in value.values() if isinstance(v, dict) and "T" in v)


@dataclass(frozen=True, slots=True)
class Recording:
    """The data messages of a recording, in order, and the symbols they mention."""

    messages: tuple[DataMessage, ...]
    symbols: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> Recording:
        """Read ``path``.

        Raises:
            ReplayError: the file cannot be read, a line is not JSON or holds a malformed
                message, or there is no data message at all.
        """
        try:
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            raise ReplayError(f"cannot read replay file {path}: {exc.strerror}") from exc
        messages: list[DataMessage] = []
        symbols: dict[str, None] = {}
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                objects = list(_wire_objects(orjson.loads(line)))
                decoded = decode_json(orjson.dumps(objects)) if objects else []
            except orjson.JSONDecodeError:
                raise ReplayError(f"{path}:{number}: not a JSON line") from None
            except DecodeError as exc:
                raise ReplayError(f"{path}:{number}: {exc}") from None
            for message in decoded:
                if isinstance(message, Trade | Quote | Bar | OrderBookUpdate):
                    message.extra = None
                    messages.append(message)
                    symbols[message.symbol] = None
        if not messages:
            raise ReplayError(
                f"{path}: no data messages (t, q, o, b, d, u) to replay; "
                "record one with a JSON line per message or per frame"
            )
        return cls(tuple(messages), tuple(symbols))


class ReplaySource:
    """One connection's cursor over a :class:`Recording` (a :class:`~.source.DataSource`)."""

    def __init__(self, recording: Recording) -> None:
        self._messages = recording.messages
        self._cursor = 0
        self._books: dict[str, tuple[dict[float, float], dict[float, float], int]] = {}

    def snapshot(self, symbol: str, now_ns: int) -> OrderBookUpdate:
        """The book of ``symbol`` as replayed so far (empty before its first update)."""
        bids, asks, t = self._books.get(symbol, ({}, {}, now_ns))
        return OrderBookUpdate(
            symbol,
            t,
            [Level(p, s) for p, s in sorted(bids.items(), reverse=True)],
            [Level(p, s) for p, s in sorted(asks.items())],
            reset=True,
        )

    def forget(self, symbol: str) -> None:
        """Nothing to do: replayed books are kept for every symbol."""

    def generate(self, count: int, targets: Targets, now_ns: int) -> list[DataMessage]:
        """The next ``count`` recorded messages ``targets`` wants (fewer if it wants few)."""
        out: list[DataMessage] = []
        messages = self._messages
        total = len(messages)
        idle = 0  # messages scanned since the last match: a whole pass of none means stop
        while len(out) < count and idle < total:
            message = messages[self._cursor]
            self._cursor = (self._cursor + 1) % total
            idle += 1
            if isinstance(message, OrderBookUpdate):
                self._apply(message)
            if targets.wants(channel_of(message), message.symbol):
                out.append(copy.copy(message))
                idle = 0
        return out

    def bars(self, targets: Targets, now_ns: int) -> list[DataMessage]:
        """Nothing: recorded bars replay in order with everything else."""
        return []

    def _apply(self, update: OrderBookUpdate) -> None:
        if update.reset or update.symbol not in self._books:
            bids: dict[float, float] = {}
            asks: dict[float, float] = {}
        else:
            bids, asks, _ = self._books[update.symbol]
        for side, levels in ((bids, update.bids), (asks, update.asks)):
            for lv in levels:
                if lv.s > 0:
                    side[lv.p] = lv.s
                else:
                    side.pop(lv.p, None)
        self._books[update.symbol] = (bids, asks, update.timestamp)
