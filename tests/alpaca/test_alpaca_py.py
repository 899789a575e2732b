"""An outside check of the shared codec: Alpaca's official Python SDK (alpaca-py) reads what
our encoder writes, and our client-message decoder reads what the SDK sends.

The stand-in server and our client share one codec, so a codec bug would fool both; the SDK
is an independent implementation of the same wire format (msgpack, as every SDK speaks it).
"""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC
from typing import Any

import msgpack
import pytest

from alpaca_cli.alpaca.codec import (
    AuthRequest,
    SubscribeRequest,
    decode,
    decode_client_message,
    encode_frame,
)
from alpaca_cli.alpaca.messages import Bar, OrderBookUpdate, Quote, Success, Trade

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the SDK imports websockets' legacy API
    crypto = pytest.importorskip("alpaca.data.live.crypto")

SPEC_FRAME = (
    b'[{"T":"t","S":"AVAX/USD","p":47.299,"s":29.205707815,"t":"2024-03-12T10:27:48.858228144Z",'
    b'"i":3447222699101865076,"tks":"S"},'
    b'{"T":"q","S":"BAT/USD","bp":0.35718,"bs":13445.46,"ap":0.3581,"as":13561.902,'
    b'"t":"2024-03-12T10:29:43.111588173Z"},'
    b'{"T":"b","S":"BTC/USD","o":26675.04,"h":26695.36,"l":26668.79,"c":26688.7,"v":3.227759152,'
    b'"t":"2023-03-17T12:28:00Z","n":93,"vw":26679.5912436798},'
    b'{"T":"o","S":"BTC/USD","t":"2024-03-12T10:38:50.79613221Z","b":[{"p":71859.53,"s":0.27994},'
    b'{"p":71849.4,"s":0.553986}],"a":[{"p":71939.7,"s":0.83953}],"r":true}]'
)


def _stream() -> Any:
    return crypto.CryptoDataStream("AKEY", "s3cr3t")


def _us(ns: int) -> int:
    return ns // 1000


def test_the_sdk_parses_our_msgpack_frames_to_the_same_values() -> None:
    ours = decode(SPEC_FRAME)
    payload = encode_frame(ours, "msgpack")
    stream = _stream()
    theirs = [stream._cast(m) for m in msgpack.unpackb(payload)]
    for mine, sdk in zip(ours, theirs, strict=True):
        assert sdk.symbol == mine.symbol  # type: ignore[union-attr]
        ts = sdk.timestamp.astimezone(UTC)
        micros = int(ts.timestamp()) * 1_000_000 + ts.microsecond
        assert micros == _us(mine.timestamp)  # type: ignore[union-attr]
        if isinstance(mine, Trade):
            assert (sdk.price, sdk.size, sdk.id) == (mine.price, mine.size, mine.id)
        elif isinstance(mine, Quote):
            assert (sdk.bid_price, sdk.bid_size, sdk.ask_price, sdk.ask_size) == (
                mine.bid_price, mine.bid_size, mine.ask_price, mine.ask_size,
            )  # fmt: skip
        elif isinstance(mine, Bar):
            assert (sdk.open, sdk.high, sdk.low, sdk.close, sdk.volume) == (
                mine.open, mine.high, mine.low, mine.close, mine.volume,
            )  # fmt: skip
            assert (sdk.trade_count, sdk.vwap) == (mine.trade_count, mine.vwap)
        else:
            assert isinstance(mine, OrderBookUpdate)
            assert [(q.price, q.size) for q in sdk.bids] == [(lv.p, lv.s) for lv in mine.bids]
            assert [(q.price, q.size) for q in sdk.asks] == [(lv.p, lv.s) for lv in mine.asks]
            assert sdk.reset is mine.reset


class _FakeSocket:
    """Records what the SDK sends and answers ``recv`` from a queue of our frames."""

    def __init__(self, replies: list[bytes]) -> None:
        self.sent: list[bytes] = []
        self.replies = replies

    async def send(self, data: Any) -> None:
        self.sent.append(data if isinstance(data, bytes) else b"".join(data))

    async def recv(self) -> bytes:
        return self.replies.pop(0)


def test_we_parse_the_sdks_auth_and_it_accepts_our_reply() -> None:
    stream = _stream()
    ws = _FakeSocket([encode_frame([Success("authenticated")], "msgpack")])
    stream._ws = ws
    asyncio.run(stream._auth())  # raises if it did not understand our reply
    assert decode_client_message(ws.sent[0]) == AuthRequest("AKEY", "s3cr3t")


def test_we_parse_the_sdks_subscribe_and_unsubscribe() -> None:
    stream = _stream()

    async def handler(_: object) -> None:
        return None

    stream.subscribe_orderbooks(handler, "BTC/USD", "ETH/USD")
    stream.subscribe_trades(handler, "BTC/USD")
    ws = _FakeSocket([])
    stream._ws = ws
    asyncio.run(stream._send_subscribe_msg())
    asyncio.run(stream._send_unsubscribe_msg("orderbooks", ["ETH/USD"]))
    sub, unsub = (decode_client_message(p) for p in ws.sent)
    assert sub == SubscribeRequest({"orderbooks": ("BTC/USD", "ETH/USD"), "trades": ("BTC/USD",)})
    assert unsub == SubscribeRequest({"orderbooks": ("ETH/USD",)}, unsubscribe=True)
