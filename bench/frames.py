"""A deterministic, realistic Alpaca crypto stream for the decode + book benchmark.

The decode benchmark must run on frames that look like what a busy ``*`` subscription delivers:
many symbols at their real price levels, a mix of trades, quotes, bars and order-book deltas,
periodic full-book resets (the reconnect-burst case, where each book arrives whole), and several
messages per frame. The same logical messages are encoded twice, as JSON (Alpaca's default) and as
msgpack with ``t`` as a msgpack Timestamp (what the official SDKs negotiate), so every contender
parses the very same stream in its own wire format.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import msgpack
import orjson

__all__ = ["SYMBOLS", "Workload", "generate", "rfc3339"]

SYMBOLS: dict[str, float] = {
    "BTC/USD": 67250.0,
    "ETH/USD": 3480.0,
    "SOL/USD": 148.2,
    "DOGE/USD": 0.1421,
    "AVAX/USD": 35.6,
    "LINK/USD": 17.9,
    "LTC/USD": 82.4,
    "BCH/USD": 452.0,
    "UNI/USD": 9.82,
    "AAVE/USD": 96.3,
    "DOT/USD": 7.12,
    "XRP/USD": 0.5213,
    "SHIB/USD": 0.00002431,
    "MKR/USD": 2614.5,
    "CRV/USD": 0.7904,
    "BAT/USD": 0.3571,
    "GRT/USD": 0.2702,
    "SUSHI/USD": 1.124,
    "XTZ/USD": 0.981,
    "YFI/USD": 7420.0,
    "BTC/USDT": 67240.0,
    "ETH/USDT": 3478.5,
    "ETH/BTC": 0.05174,
    "USDC/USD": 1.0001,
}
"""The symbol universe (24 pairs) and a realistic starting price for each."""

_BASE_NS = 1_710_238_068_858_228_144  # 2024-03-12T10:07:48.858228144Z


def rfc3339(ns: int) -> str:
    """Alpaca's timestamp text: UTC, nanoseconds, trailing zeros trimmed."""
    secs, frac = divmod(ns, 1_000_000_000)
    # time.gmtime would do, but keep the generator free of the local clock entirely.
    days, rem = divmod(secs, 86_400)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    y, m, d = _civil_from_days(days)
    text = f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """Howard Hinnant's days-to-civil algorithm (proleptic Gregorian)."""
    z += 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


@dataclass(slots=True)
class Workload:
    """One generated stream: the same messages as JSON frames and as msgpack frames."""

    json_frames: list[bytes]
    msgpack_frames: list[bytes]
    messages: int
    counts: dict[str, int]
    symbols: int

    def describe(self) -> dict[str, Any]:
        """The workload as results.json states it."""
        json_bytes = sum(len(f) for f in self.json_frames)
        return {
            "frames": len(self.json_frames),
            "messages": self.messages,
            "symbols": self.symbols,
            "messages_by_type": dict(sorted(self.counts.items())),
            "json_bytes": json_bytes,
            "msgpack_bytes": sum(len(f) for f in self.msgpack_frames),
            "mean_messages_per_frame": round(self.messages / max(1, len(self.json_frames)), 2),
        }


class _Book:
    """A generator-side book that stays uncrossed, so deltas look like a real venue's."""

    def __init__(self, mid: float, rng: random.Random) -> None:
        self.mid = mid
        self.tick = mid * 0.0001
        self.rng = rng
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def _price(self, side: str, depth: int) -> float:
        off = (depth + 1) * self.tick
        raw = self.mid - off if side == "b" else self.mid + off
        return float(f"{raw:.8g}")

    def snapshot(self, levels: int) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
        self.bids = {self._price("b", i): self._size() for i in range(levels)}
        self.asks = {self._price("a", i): self._size() for i in range(levels)}
        return _levels(self.bids), _levels(self.asks)

    def delta(self) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
        bids: dict[float, float] = {}
        asks: dict[float, float] = {}
        for _ in range(self.rng.randint(1, 4)):
            side, book, out = (
                ("b", self.bids, bids) if self.rng.random() < 0.5 else ("a", self.asks, asks)
            )
            roll = self.rng.random()
            if roll < 0.25 and book:
                price = self.rng.choice(list(book))
                del book[price]
                out[price] = 0.0
            else:
                price = self._price(side, self.rng.randint(0, 30))
                book[price] = out[price] = self._size()
        return _levels(bids), _levels(asks)

    def _size(self) -> float:
        return round(self.rng.lognormvariate(0.0, 1.5) * 1000 / max(self.mid, 0.01) + 1e-6, 9)


def _levels(side: dict[float, float]) -> list[dict[str, float]]:
    return [{"p": p, "s": s} for p, s in side.items()]


def generate(
    messages: int = 50_000,
    *,
    seed: int = 7,
    symbols: int = len(SYMBOLS),
    reset_every: int = 400,
    reset_levels: int = 40,
    max_per_frame: int = 12,
) -> Workload:
    """Generate ``messages`` messages over ``symbols`` pairs, packed into frames.

    Mix (by message): ~40% order-book deltas, ~28% trades, ~25% quotes, ~7% bars (minute,
    daily, updated); each book starts with a ``reset_levels``-deep ``r:true`` snapshot and gets
    another one every ``reset_every`` book messages overall (spread over symbols). Frames hold
    1..``max_per_frame`` messages.
    """
    rng = random.Random(seed)
    universe = list(SYMBOLS.items())[:symbols]
    books = {sym: _Book(px, rng) for sym, px in universe}
    ts = _BASE_NS
    trade_id = 3_447_222_699_101_865_076  # above 2**53, as real ids are
    dicts: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    fresh = set(books)
    book_msgs = 0
    while len(dicts) < messages:
        sym, _ = universe[rng.randrange(len(universe))]
        book = books[sym]
        book.mid *= 1 + rng.gauss(0, 0.0002)
        ts += rng.randint(10_000, 400_000)
        roll = rng.random()
        msg: dict[str, Any]
        if sym in fresh or roll < 0.40:
            book_msgs += 1
            if sym in fresh or book_msgs % reset_every == 0:
                fresh.discard(sym)
                bids, asks = book.snapshot(reset_levels)
                msg = {"T": "o", "S": sym, "t": ts, "b": bids, "a": asks, "r": True}
            else:
                bids, asks = book.delta()
                msg = {"T": "o", "S": sym, "t": ts, "b": bids, "a": asks}
        elif roll < 0.68:
            trade_id += rng.randint(1, 50)
            msg = {
                "T": "t",
                "S": sym,
                "p": float(f"{book.mid:.8g}"),
                "s": round(rng.expovariate(1.0) * 100 / max(book.mid, 0.01), 9),
                "t": ts,
                "i": trade_id,
                "tks": "B" if rng.random() < 0.5 else "S",
            }
        elif roll < 0.93:
            half = book.tick * rng.randint(1, 3)
            msg = {
                "T": "q",
                "S": sym,
                "bp": float(f"{book.mid - half:.8g}"),
                "bs": round(rng.random() * 10, 9),
                "ap": float(f"{book.mid + half:.8g}"),
                "as": round(rng.random() * 10, 9),
                "t": ts,
            }
        else:
            kind = rng.choice("bbbdu")
            o = book.mid
            c = o * (1 + rng.gauss(0, 0.001))
            msg = {
                "T": kind,
                "S": sym,
                "o": float(f"{o:.8g}"),
                "h": float(f"{max(o, c) * 1.0005:.8g}"),
                "l": float(f"{min(o, c) * 0.9995:.8g}"),
                "c": float(f"{c:.8g}"),
                "v": round(rng.random() * 50, 9),
                "t": ts - ts % 60_000_000_000,
                "n": rng.randint(1, 400),
                "vw": float(f"{(o + c) / 2:.10g}"),
            }
        counts[msg["T"]] = counts.get(msg["T"], 0) + 1
        dicts.append(msg)

    json_frames: list[bytes] = []
    msgpack_frames: list[bytes] = []
    i = 0
    while i < len(dicts):
        n = rng.randint(1, max_per_frame)
        chunk = dicts[i : i + n]
        i += n
        json_frames.append(orjson.dumps([{**m, "t": rfc3339(m["t"])} for m in chunk]))
        msgpack_frames.append(msgpack.packb([_for_msgpack(m) for m in chunk], datetime=False))
    return Workload(json_frames, msgpack_frames, len(dicts), counts, len(universe))


def _for_msgpack(m: dict[str, Any]) -> dict[str, Any]:
    secs, nanos = divmod(m["t"], 1_000_000_000)
    return {**m, "t": msgpack.Timestamp(secs, nanos)}
