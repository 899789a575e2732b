"""The feed over real WebSockets on loopback: every session rule and error code of the spec."""

from __future__ import annotations

import asyncio
import socket

import msgpack
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from alpaca_cli.alpaca.book import OrderBook
from alpaca_cli.alpaca.codec import decode
from alpaca_cli.alpaca.messages import OrderBookUpdate
from alpaca_cli.devstack.feed import TRADE_ID_BASE, FeedConfig, FeedServer

pytestmark = pytest.mark.timeout(30)

EMPTY_SET = {
    "trades": [],
    "quotes": [],
    "orderbooks": [],
    "bars": [],
    "updatedBars": [],
    "dailyBars": [],
}


def error(code: int, msg: str) -> dict[str, object]:
    return {"T": "error", "code": code, "msg": msg}


def subscription(**channels: list[str]) -> dict[str, object]:
    return {"T": "subscription", **EMPTY_SET, **channels}


class TestWelcomeAndAuth:
    def test_welcome_is_the_exact_connected_frame_in_a_text_frame(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                raw = await c.ws.recv()
                assert raw == '[{"T":"success","msg":"connected"}]'

        run(scenario)

    def test_any_non_empty_pair_authenticates_without_configured_keys(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                assert await c.auth("anything", "goes") == {"T": "success", "msg": "authenticated"}

        run(scenario)

    def test_402_for_a_wrong_pair_and_the_connection_stays_usable(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                assert await c.auth("AKTEST", "wrong") == error(402, "auth failed")
                assert await c.auth("nope", "s3cret") == error(402, "auth failed")
                assert await c.auth("AKTEST", "s3cret") == {"T": "success", "msg": "authenticated"}

        run(scenario, key="AKTEST", secret="s3cret")

    def test_402_for_an_empty_secret(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                assert await c.auth("key", "") == error(402, "auth failed")

        run(scenario)

    def test_403_for_a_second_auth(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                assert await c.auth() == error(403, "already authenticated")

        run(scenario)

    def test_401_for_subscribe_before_auth(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                assert await c.subscribe(trades=["BTC/USD"]) == error(401, "not authenticated")
                await c.send({"action": "unsubscribe", "trades": ["BTC/USD"]})
                assert await c.one() == error(401, "not authenticated")

        run(scenario)

    def test_404_auth_timeout_then_a_normal_close(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                assert await c.one() == {"T": "success", "msg": "connected"}
                assert await c.one() == error(404, "auth timeout")
                with pytest.raises(ConnectionClosedOK):
                    await c.ws.recv()

        run(scenario, auth_timeout=0.2)

    def test_header_auth_authenticates_at_the_handshake(self, run, feed_client):
        headers = {"APCA-API-KEY-ID": "AKTEST", "APCA-API-SECRET-KEY": "s3cret"}

        async def scenario(server: FeedServer) -> None:
            async with feed_client(server, headers=headers) as c:
                assert await c.one() == {"T": "success", "msg": "connected"}
                assert await c.one() == {"T": "success", "msg": "authenticated"}
                assert await c.subscribe(trades=["BTC/USD"]) == subscription(trades=["BTC/USD"])
                assert await c.auth("AKTEST", "s3cret") == error(403, "already authenticated")

        run(scenario, key="AKTEST", secret="s3cret", auth_timeout=0.5, rate=0)

    def test_header_auth_with_a_wrong_secret_is_402(self, run, feed_client):
        headers = {"APCA-API-KEY-ID": "AKTEST", "APCA-API-SECRET-KEY": "bad"}

        async def scenario(server: FeedServer) -> None:
            async with feed_client(server, headers=headers) as c:
                await c.one()
                assert await c.one() == error(402, "auth failed")

        run(scenario, key="AKTEST", secret="s3cret")


class TestConnectionLimit:
    def test_406_for_a_second_connection_of_the_same_key_then_the_slot_frees(
        self, run, feed_client, wait_until
    ):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as first:
                await first.one()
                await first.auth("AKONE", "s")
                async with feed_client(server) as second:
                    await second.one()
                    assert await second.auth("AKONE", "s") == error(
                        406, "connection limit exceeded"
                    )
                    with pytest.raises(ConnectionClosedOK):
                        await second.ws.recv()
                async with feed_client(server) as other_key:
                    await other_key.one()
                    assert (await other_key.auth("AKTWO", "s"))["msg"] == "authenticated"
            await wait_until(lambda: server.registry.held("AKONE") == 0)
            async with feed_client(server) as third:
                await third.one()
                assert (await third.auth("AKONE", "s"))["msg"] == "authenticated"

        run(scenario)

    def test_the_limit_is_configurable(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as a, feed_client(server) as b:
                for c in (a, b):
                    await c.one()
                    assert (await c.auth())["msg"] == "authenticated"

        run(scenario, max_connections_per_key=2)


class TestSubscriptions:
    def test_subscribe_is_additive_and_answered_with_the_whole_set(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                assert await c.subscribe(trades=["BTC/USD"]) == subscription(trades=["BTC/USD"])
                assert await c.subscribe(trades=["ETH/USD"], orderbooks=["SOL/USD"]) == (
                    subscription(trades=["BTC/USD", "ETH/USD"], orderbooks=["SOL/USD"])
                )
                await c.send({"action": "unsubscribe", "trades": ["BTC/USD"]})
                while (reply := (await c.frame())[0])["T"] != "subscription":
                    pass  # the SOL/USD snapshot and data may come first
                assert reply == subscription(trades=["ETH/USD"], orderbooks=["SOL/USD"])

        run(scenario, rate=0)

    def test_405_rejects_the_request_whole_and_sends_no_subscription(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                assert await c.subscribe(trades=["BTC/USD", "ETH/USD"]) == subscription(
                    trades=["BTC/USD", "ETH/USD"]
                )
                assert await c.subscribe(
                    quotes=["BTC/USD"], trades=["SOL/USD", "DOGE/USD"]
                ) == error(405, "symbol limit exceeded")
                assert await c.subscribe(trades=["*"]) == error(405, "symbol limit exceeded")
                # The next reply shows the set untouched by both rejected requests.
                assert await c.subscribe(bars=["AVAX/USD"]) == subscription(
                    trades=["BTC/USD", "ETH/USD"], bars=["AVAX/USD"]
                )

        run(scenario, symbol_limit=3, rate=0)

    def test_400_for_malformed_json_and_for_badly_formed_symbols(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.ws.send("{not json")
                assert await c.one() == error(400, "invalid syntax")
                await c.ws.send('["an", "array"]')
                assert await c.one() == error(400, "invalid syntax")
                await c.send({"action": "dance"})
                assert await c.one() == error(400, "invalid syntax")
                await c.auth()
                for bad in (["btc/usd"], ["BTCUSD"], [42], "BTC/USD"):
                    await c.send({"action": "subscribe", "trades": bad})
                    assert await c.one() == error(400, "invalid syntax"), bad
                assert await c.subscribe(trades=["BTC/USD"]) == subscription(trades=["BTC/USD"])

        run(scenario, rate=0)

    def test_410_for_a_channel_this_feed_lacks(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                assert await c.subscribe(trades=["BTC/USD"], statuses=["BTC/USD"]) == error(
                    410, "invalid subscribe action for this feed"
                )
                assert await c.subscribe(news=["*"]) == error(
                    410, "invalid subscribe action for this feed"
                )
                assert await c.subscribe(quotes=["ETH/USD"]) == subscription(quotes=["ETH/USD"])

        run(scenario, rate=0)

    def test_wildcard_delivers_every_symbol_of_the_universe(self, run, feed_client):
        universe = ("BTC/USD", "ETH/USD", "SOL/USD")

        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                assert await c.subscribe(quotes=["*"]) == subscription(quotes=["*"])
                seen: set[str] = set()
                while seen != set(universe):
                    for message in await c.data(1):
                        assert message["T"] == "q"
                        seen.add(message["S"])

        run(scenario, symbols=universe, rate=500)


class TestData:
    def test_messages_follow_the_spec_schema(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                await c.subscribe(trades=["BTC/USD"], quotes=["BTC/USD"])
                messages = await c.data(60)
                kinds = {m["T"] for m in messages}
                assert kinds == {"t", "q"}
                for m in messages:
                    if m["T"] == "t":
                        assert set(m) == {"T", "S", "p", "s", "t", "i", "tks"}
                        assert m["tks"] in ("B", "S")
                        assert isinstance(m["i"], int)
                        assert m["i"] > 2**53
                    else:
                        assert set(m) == {"T", "S", "bp", "bs", "ap", "as", "t"}
                        assert m["bp"] < m["ap"]
                    assert m["S"] == "BTC/USD"
                    assert m["t"].endswith("Z")
                    assert 50_000 < m.get("p", m.get("bp")) < 200_000
                # our own codec agrees with the raw reading
                assert len(decode(orjson.dumps(messages))) == len(messages)

        run(scenario, rate=2000)

    def test_trade_ids_count_up_by_one_per_connection(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                await c.subscribe(trades=["*"])
                ids = [m["i"] for m in await c.data(300)]
                assert ids == list(range(TRADE_ID_BASE + 1, TRADE_ID_BASE + 1 + len(ids)))

        run(scenario, rate=3000)

    def test_several_messages_per_frame_at_a_high_rate(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                await c.subscribe(trades=["*"], quotes=["*"])
                sizes = [len(await c.frame()) for _ in range(20)]
                assert max(sizes) > 1

        run(scenario, rate=20_000)

    def test_seq_field_numbers_every_data_message(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                await c.subscribe(orderbooks=["BTC/USD", "ETH/USD"], quotes=["*"])
                messages = await c.data(200)
                assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))

        run(scenario, rate=3000, seq_field="seq")

    def test_order_book_snapshot_first_then_deltas_that_never_cross(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                await c.subscribe(orderbooks=["BTC/USD", "DOGE/USD"])
                books: dict[str, OrderBook] = {}
                deletes = adds = 0
                for raw in await c.data(400):
                    assert raw["T"] == "o"
                    symbol = raw["S"]
                    if symbol not in books:
                        assert raw.get("r") is True, "the first book message is a full snapshot"
                        assert len(raw["b"]) >= 10 and len(raw["a"]) >= 10
                        books[symbol] = OrderBook(symbol)
                    else:
                        assert "r" not in raw
                    book = books[symbol]
                    before = set(book.bids) | set(book.asks)
                    (update,) = decode(f"[{_json(raw)}]")
                    assert isinstance(update, OrderBookUpdate)
                    book.apply(update)
                    assert not book.crossed
                    deletes += sum(1 for lv in update.bids + update.asks if lv.s == 0)
                    adds += sum(
                        1 for lv in update.bids + update.asks if lv.s and lv.p not in before
                    )
                assert set(books) == {"BTC/USD", "DOGE/USD"}
                assert deletes > 0 and adds > 0

        run(scenario, rate=3000)

    def test_resubscribing_a_book_sends_a_fresh_snapshot(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                await c.subscribe(orderbooks=["ETH/USD"])
                assert (await c.frame())[0]["r"] is True
                await c.send({"action": "unsubscribe", "orderbooks": ["ETH/USD"]})
                while (await c.frame())[0]["T"] != "subscription":
                    pass
                assert await c.subscribe(orderbooks=["ETH/USD"]) == subscription(
                    orderbooks=["ETH/USD"]
                )
                first = (await c.frame())[0]
                assert first["S"] == "ETH/USD" and first["r"] is True

        run(scenario, rate=200)

    def test_bars_daily_bars_and_corrections_follow_the_clock(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth()
                await c.subscribe(bars=["*"], dailyBars=["BTC/USD"], updatedBars=["*"])
                seen: dict[str, dict[str, object]] = {}
                bar_times: set[str] = set()
                while not {"b", "d", "u"} <= set(seen):
                    for m in await c.data(1):
                        seen[m["T"]] = m
                        assert set(m) == {"T", "S", "o", "h", "l", "c", "v", "t", "n", "vw"}
                        assert m["l"] <= min(m["o"], m["c"]) <= max(m["o"], m["c"]) <= m["h"]
                        if m["T"] == "b":
                            bar_times.add(m["t"])
                        if m["T"] == "u":
                            assert m["t"] in bar_times, "a correction replaces an earlier bar"
                        if m["T"] == "d":
                            assert m["S"] == "BTC/USD"
                            assert m["t"].endswith("T00:00:00Z")

        run(scenario, bar_interval=0.05, symbols=("BTC/USD", "ETH/USD", "SOL/USD"))

    def test_each_connection_with_the_same_seed_sees_the_same_market(self, run, feed_client):
        async def take(server: FeedServer, key: str) -> list[tuple[object, ...]]:
            async with feed_client(server) as c:
                await c.one()
                await c.auth(key)
                await c.subscribe(trades=["*"], quotes=["BTC/USD"], orderbooks=["ETH/USD"])
                messages = (await c.data(300))[:300]
                return [tuple((k, str(v)) for k, v in m.items() if k != "t") for m in messages]

        async def scenario(server: FeedServer) -> tuple[object, object]:
            return await take(server, "A1"), await take(server, "A2")

        first, second = run(scenario, seed=42, rate=5000)
        assert first == second
        third, _ = run(scenario, seed=43, rate=5000)
        assert third != first


class TestMsgpack:
    def test_msgpack_frames_with_timestamps_and_both_client_encodings(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server, msgpack_mode=True) as c:
                assert await c.one() == {"T": "success", "msg": "connected"}
                # msgpack auth in a binary frame, JSON subscribe in a text frame: both accepted
                assert await c.auth() == {"T": "success", "msg": "authenticated"}
                await c.send({"action": "subscribe", "trades": ["BTC/USD"]}, binary=False)
                assert await c.one() == subscription(trades=["BTC/USD"])
                payload = await c.ws.recv()
                assert isinstance(payload, bytes)
                (trade, *_) = msgpack.unpackb(payload, timestamp=0)
                assert next(iter(trade)) == "T", "T is the first key of every map"
                assert isinstance(trade["t"], msgpack.Timestamp)
                assert trade["i"] > 2**53
                decoded = decode(payload)
                assert decoded[0].timestamp == trade["t"].to_unix_nano()

        run(scenario, rate=500)

    def test_malformed_msgpack_is_400(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server, msgpack_mode=True) as c:
                await c.one()
                await c.ws.send(b"\xc1\xc1")
                assert await c.one() == error(400, "invalid syntax")

        run(scenario)


class TestGoSdk:
    """Alpaca's Go SDK, byte for byte: its subscribe names every channel key it knows."""

    def test_the_go_sdks_exact_subscribe_message_is_accepted(self, run, feed_client):
        # marketdata/stream/subscription.go getSubChangeMessage: msgpack.Marshal of a map with
        # action and eleven channels; Go's nil slices encode as msgpack nil (0xc0).
        channels = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses",
                    "imbalances", "lulds", "orderbooks", "news", "pricing")  # fmt: skip
        used = {"trades": ["BTC/USD"], "orderbooks": ["BTC/USD"], "bars": ["ETH/USD"]}
        message = msgpack.packb({"action": "subscribe", **{c: used.get(c) for c in channels}})
        assert message.count(b"\xc0") == len(channels) - len(used)

        async def scenario(server: FeedServer) -> None:
            async with feed_client(server, msgpack_mode=True) as c:
                assert await c.one() == {"T": "success", "msg": "connected"}
                assert await c.auth() == {"T": "success", "msg": "authenticated"}
                await c.ws.send(message)
                assert await c.one() == subscription(**used)
                (snapshot,) = await c.frame()
                assert (snapshot["T"], snapshot["S"], snapshot["r"]) == ("o", "BTC/USD", True)
                # Unsubscribing the same way (every key, nil for the rest) empties the set.
                await c.ws.send(message.replace(b"\xa9subscribe", b"\xabunsubscribe"))
                while (reply := await c.frame())[0]["T"] != "subscription":
                    pass
                assert reply == [subscription()]

        run(scenario, rate=0)

    def test_a_non_empty_channel_the_feed_lacks_is_410_even_among_nulls(self, run, feed_client):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server, msgpack_mode=True) as c:
                await c.one()
                await c.auth()
                await c.send({"action": "subscribe", "trades": None, "news": ["*"]})
                assert await c.one() == error(410, "invalid subscribe action for this feed")
                await c.send({"action": "subscribe", "trades": ["BTC/USD"], "statuses": []})
                assert await c.one() == subscription(trades=["BTC/USD"])

        run(scenario, rate=0)


class TestTransport:
    def test_permessage_deflate_is_negotiated_when_the_client_offers_it(self, run):
        async def scenario(server: FeedServer) -> None:
            async with connect(server.url, compression="deflate") as ws:
                assert ws.response is not None
                assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
                assert orjson.loads(await ws.recv()) == [{"T": "success", "msg": "connected"}]
            async with connect(server.url, compression=None) as ws:
                assert ws.response is not None
                assert "Sec-WebSocket-Extensions" not in ws.response.headers

        run(scenario)

    def test_compression_can_be_turned_off_for_raw_frame_tests(self, run):
        async def scenario(server: FeedServer) -> None:
            async with connect(server.url, compression="deflate") as ws:
                assert ws.response is not None
                assert "Sec-WebSocket-Extensions" not in ws.response.headers

        run(scenario, compression=False)

    @pytest.mark.parametrize(
        "path",
        [
            pytest.param("/v1beta2/crypto/us", id="retired-version"),
            pytest.param("/v1beta3/crypto", id="no-location"),
            pytest.param("/", id="root"),
            pytest.param("/v2/test", id="stock-test-stream"),
        ],
    )
    def test_other_paths_get_http_404_at_the_handshake(self, run, feed_client, path):
        async def scenario(server: FeedServer) -> None:
            with pytest.raises(InvalidStatus) as info:
                async with feed_client(server, path=path):
                    pass
            assert info.value.response.status_code == 404

        run(scenario)

    @pytest.mark.parametrize("loc", ["us", "us-1", "eu-1"])
    def test_every_location_is_served(self, run, feed_client, loc):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server, path=f"/v1beta3/crypto/{loc}") as c:
                assert await c.one() == {"T": "success", "msg": "connected"}

        run(scenario)

    def test_drop_after_aborts_without_a_close_frame(self, run, feed_client, wait_until):
        async def scenario(server: FeedServer) -> None:
            async with feed_client(server) as c:
                await c.one()
                await c.auth("AKDROP", "s")
                await c.subscribe(trades=["BTC/USD"])
                with pytest.raises(ConnectionClosedError) as info:
                    while True:
                        await c.frame()
                assert info.value.rcvd is None, "no close frame from the server"
            await wait_until(lambda: server.registry.held("AKDROP") == 0)
            assert server.stats[0].close_reason == "dropped"

        run(scenario, drop_after=0.3, rate=100)

    def test_407_for_a_client_that_stops_reading_then_a_close(self, feed_client, wait_until):
        async def main() -> None:
            server = FeedServer(FeedConfig(rate=50_000, slow_client_after=0.2))
            await server.start()
            try:
                # A tiny receive buffer, no compression and max_queue=1 (stop reading from the
                # socket as soon as one frame waits): the server's buffers fill up quickly.
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", server.port))
                async with connect(server.url, sock=sock, max_queue=1, compression=None) as ws:
                    await ws.recv()
                    await ws.send('{"action":"auth","key":"k","secret":"s"}')
                    await ws.recv()
                    await ws.send('{"action":"subscribe","trades":["*"],"orderbooks":["*"]}')
                    await wait_until(lambda: server.stats[0].close_reason == "slow client", 15)
                    last: list[object] = []
                    with pytest.raises(ConnectionClosedError) as info:
                        while True:
                            last = orjson.loads(await ws.recv())
                    assert last == [error(407, "slow client")]
                    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
            finally:
                await server.stop()

        asyncio.run(main())

    def test_stop_closes_clients_with_going_away(self, feed_client):
        async def main() -> None:
            server = FeedServer(FeedConfig())
            await server.start()
            async with feed_client(server) as c:
                await c.one()
                await server.stop()
                with pytest.raises(ConnectionClosedOK) as info:
                    await c.ws.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1001
            assert server.stats[0].close_reason == "server stopped"

        asyncio.run(main())


def _json(obj: object) -> str:
    return orjson.dumps(obj).decode()
