"""Replaying an NDJSON recording, from the file to a real WebSocket client."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from alpaca_cli.alpaca.messages import Level, OrderBookUpdate, Trade
from alpaca_cli.devstack.feed import FeedServer, Recording, ReplayError, ReplaySource
from alpaca_cli.devstack.feed.session import Targets

pytestmark = pytest.mark.timeout(30)

# The spec's example messages, one per line, plus the shapes a recording may take.
RECORDING = """\
[{"T":"success","msg":"connected"}]
{"T":"t","S":"AVAX/USD","p":47.299,"s":29.205707815,"t":"2024-03-12T10:27:48.858228144Z","i":3447222699101865076,"tks":"S"}
{"T":"q","S":"BAT/USD","bp":0.35718,"bs":13445.46,"ap":0.3581,"as":13561.902,"t":"2024-03-12T10:29:43.111588173Z"}

{"T":"b","S":"BTC/USD","o":26675.04,"h":26695.36,"l":26668.79,"c":26688.7,"v":3.227759152,"t":"2023-03-17T12:28:00Z","n":93,"vw":26679.5912436798}
{"T":"o","S":"BTC/USD","t":"2024-03-12T10:38:50.79613221Z","b":[{"p":71859.53,"s":0.27994},{"p":71849.4,"s":0.553986}],"a":[{"p":71939.7,"s":0.83953}],"r":true}
[{"T":"o","S":"MKR/USD","t":"2024-03-12T10:39:39.445492807Z","b":[],"a":[{"p":2614.587,"s":12.5308}]},{"T":"o","S":"CRV/USD","t":"2024-03-12T10:39:40.501160019Z","b":[{"p":0.7904,"s":0}],"a":[]}]
{"received_at":"2024-03-12T10:27:49.1Z","frame":{"topic":"alpaca-ticks","T":"meta"},"message":{"T":"t","S":"AVAX/USD","p":47.3,"s":1.5,"t":"2024-03-12T10:27:49Z","i":3447222699101865077,"tks":"B"}}
{"T":"o","S":"BTC/USD","t":"2024-03-12T10:38:51Z","b":[{"p":71849.4,"s":0}],"a":[{"p":71940.1,"s":2.0}]}
{"T":"subscription","trades":["*"]}
"""


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "stream.ndjson"
    path.write_text(RECORDING)
    return path


def test_load_keeps_data_messages_in_order_from_every_line_shape(recording: Path):
    rec = Recording.load(recording)
    assert [m.T for m in rec.messages] == ["t", "q", "b", "o", "o", "o", "t", "o"]
    assert rec.symbols == ("AVAX/USD", "BAT/USD", "BTC/USD", "MKR/USD", "CRV/USD")
    first = rec.messages[0]
    assert isinstance(first, Trade)
    assert first.id == 3447222699101865076 and first.taker_side == "S"
    assert first.timestamp == 1710239268858228144
    wrapped = rec.messages[6]
    assert isinstance(wrapped, Trade) and wrapped.extra is None, "metadata is not replayed"


@pytest.mark.parametrize(
    "content,message",
    [
        pytest.param('{"T":"t","S":"BTC/USD"\n', "stream.ndjson:1: not a JSON line", id="not-json"),
        pytest.param(
            '\n{"T":"t","S":"BTC/USD","p":1,"s":1,"t":"x","i":1}\n',
            "stream.ndjson:2: bad timestamp",
            id="bad-message",
        ),
        pytest.param('[{"T":"success","msg":"connected"}]\n', "no data messages", id="no-data"),
    ],
)
def test_load_names_the_file_and_line_of_a_bad_recording(tmp_path: Path, content, message):
    path = tmp_path / "stream.ndjson"
    path.write_text(content)
    with pytest.raises(ReplayError, match=message):
        Recording.load(path)


def test_load_of_a_missing_file_is_a_replay_error(tmp_path: Path):
    with pytest.raises(ReplayError, match="cannot read"):
        Recording.load(tmp_path / "nope.ndjson")


def test_source_filters_by_subscription_and_loops(recording: Path):
    source = ReplaySource(Recording.load(recording))
    tg = Targets({"trades": ("AVAX/USD",)})
    prices = [m.price for m in source.generate(5, tg, 0)]  # type: ignore[union-attr]
    assert prices == [47.299, 47.3, 47.299, 47.3, 47.299]
    assert source.generate(5, Targets({"trades": ("SOL/USD",)}), 0) == []


def test_snapshot_shows_the_book_as_replayed_so_far(recording: Path):
    source = ReplaySource(Recording.load(recording))
    empty = source.snapshot("BTC/USD", 5)
    assert empty.reset and empty.bids == [] and empty.asks == [] and empty.timestamp == 5
    source.generate(100, Targets({"quotes": ("NONE/USD",)}), 0)  # one whole pass
    snap = source.snapshot("BTC/USD", 0)
    assert snap.reset
    assert snap.bids == [Level(71859.53, 0.27994)]
    assert snap.asks == [Level(71939.7, 0.83953), Level(71940.1, 2.0)]


def test_replay_over_the_wire_starts_with_a_snapshot_then_recorded_updates(
    run, feed_client, recording: Path
):
    async def scenario(server: FeedServer) -> None:
        async with feed_client(server) as c:
            await c.one()
            await c.auth()
            reply = await c.subscribe(trades=["*"], orderbooks=["BTC/USD"])
            assert reply["trades"] == ["*"]
            messages = await c.data(8)
            assert messages[0] == {
                "T": "o",
                "S": "BTC/USD",
                "t": messages[0]["t"],
                "b": [],
                "a": [],
                "r": True,
            }
            data = messages[1:8]
            assert [(m["T"], m["S"]) for m in data] == [
                ("t", "AVAX/USD"),
                ("o", "BTC/USD"),
                ("t", "AVAX/USD"),
                ("o", "BTC/USD"),
                ("t", "AVAX/USD"),
                ("o", "BTC/USD"),
                ("t", "AVAX/USD"),
            ]
            assert data[0]["i"] == 3447222699101865076
            assert data[0]["t"] == "2024-03-12T10:27:48.858228144Z", "recorded times are kept"
            assert data[1]["r"] is True

    run(scenario, replay=recording, rate=1000)


def test_the_wildcard_expands_to_the_recordings_symbols(run, feed_client, recording: Path):
    async def scenario(server: FeedServer) -> None:
        async with feed_client(server) as c:
            await c.one()
            await c.auth()
            await c.subscribe(orderbooks=["*"])
            first = await c.data(5)
            snapshots = {m["S"] for m in first[:5]}
            assert snapshots == {"AVAX/USD", "BAT/USD", "BTC/USD", "MKR/USD", "CRV/USD"}
            assert all(m.get("r") is True for m in first[:5])

    run(scenario, replay=recording, rate=10)


def test_order_book_updates_in_a_recording_are_typed(recording: Path):
    rec = Recording.load(recording)
    books = [m for m in rec.messages if isinstance(m, OrderBookUpdate)]
    assert [b.reset for b in books] == [True, False, False, False]


def test_a_recording_of_the_feed_replays_message_for_message(run, feed_client, tmp_path: Path):
    async def record(server: FeedServer) -> list[str]:
        async with feed_client(server) as c:
            await c.one()
            await c.auth()
            await c.subscribe(trades=["*"], quotes=["*"])
            lines: list[str] = []
            while sum(line.count('"T"') for line in lines) < 300:
                lines.append(await c.ws.recv())  # type: ignore[arg-type]
            return lines

    lines = run(record, rate=3000, symbols=("BTC/USD", "ETH/USD"))
    path = tmp_path / "recorded.ndjson"
    path.write_text("\n".join(lines) + "\n")
    recorded = [m for line in lines for m in orjson.loads(line)]

    async def replay(server: FeedServer) -> list[dict[str, object]]:
        async with feed_client(server) as c:
            await c.one()
            await c.auth()
            await c.subscribe(trades=["*"], quotes=["*"])
            return await c.data(len(recorded))

    assert run(replay, replay=path, rate=5000)[: len(recorded)] == recorded
