"""``alpaca-md tail`` end to end: Alpaca server -> WSM -> sidecar -> the CLI's stdout."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from alpaca_cli.platform.pubsub import PubsubClient
from tests.support import BUSES, Cli, bus_env, free_port
from tests.support_pubsub import CONTROLLER_URL, ok, streaming

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"


@pytest.fixture(scope="module", params=BUSES)
def flowing(
    embedded_with_feed: Any, tmp_path_factory: pytest.TempPathFactory, request: Any
) -> Iterator[tuple[Cli, str]]:
    """Trades for BTC/USD and ETH/USD and quotes for SOL/USD, flowing for the whole module,
    tailed over each bus in turn.

    The tests only read the topic, so one pipeline serves them all (the suite stays quick).
    """
    env = bus_env(embedded_with_feed.env(), request.param)
    cli = Cli(cwd=tmp_path_factory.mktemp("tail"), env=env)
    ok(cli("deploy", "--url", CONTROLLER_URL))
    try:
        connection_id = streaming(cli, "BTC/USD", "ETH/USD", channel="trades")
        ok(cli("subscribe", "--channel", "quotes", "SOL/USD"))
        yield cli, connection_id
    finally:
        cli("teardown")


def test_count_prints_exactly_that_many_lines(flowing: tuple[Cli, str]) -> None:
    cli, _ = flowing
    result = ok(cli("tail", "--count", "25"))
    lines = result.stdout.splitlines()
    assert len(lines) == 25
    for line in lines:
        fields = line.split("\t")
        assert re.fullmatch(RFC3339, fields[0]), line
        assert fields[1] in {"trade", "quote", "book", "[success]", "[subscription]"}, line


def test_each_kind_has_its_columns(flowing: tuple[Cli, str]) -> None:
    cli, _ = flowing
    lines = ok(cli("tail", "--count", "40", "--type", "trade,quote")).stdout.splitlines()
    by_kind: dict[str, list[list[str]]] = {}
    for line in lines:
        fields = line.split("\t")
        by_kind.setdefault(fields[1], []).append(fields)
    trade = by_kind["trade"][0]
    assert trade[2] in {"BTC/USD", "ETH/USD"}
    assert float(trade[3]) > 0 and float(trade[4]) > 0
    assert trade[5] in {"buy", "sell", "-"}
    quote = by_kind["quote"][0]
    assert quote[2] == "SOL/USD"
    assert re.fullmatch(r"bid [\d.]+ x [\d.]+", quote[3]) and quote[4].startswith("ask ")


def test_book_lines_show_the_l2_books_best_levels(flowing: tuple[Cli, str]) -> None:
    cli, _ = flowing
    proc = _spawn_tail(cli, "--type", "book", "--count", "30")
    try:
        _wait_for_stderr(proc, b"Tailing topic")
        ok(cli("subscribe", "--channel", "orderbooks", "DOGE/USD"))  # snapshot, then deltas
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    books = [line.split("\t") for line in out.decode().splitlines()]
    assert len(books) == 30
    assert books[0][2] == "DOGE/USD" and books[0][-1] == "reset"
    for fields in books:
        assert "partial" not in fields  # the snapshot came first: every line is the true book
        bid, ask = float(fields[3].split()[1]), float(fields[4].split()[1])
        assert bid < ask
        assert re.fullmatch(r"\d+/\d+ levels", fields[5])


def test_symbol_and_type_filters(flowing: tuple[Cli, str]) -> None:
    cli, _ = flowing
    only = ok(cli("tail", "--count", "10", "--symbol", "ETH/USD", "--type", "trade")).stdout
    lines = only.splitlines()
    assert len(lines) == 10
    assert all(line.split("\t")[1:3] == ["trade", "ETH/USD"] for line in lines)
    two = ok(cli("tail", "-n", "20", "-s", "SOL/USD", "-s", "BTC/USD", "-t", "quotes,t")).stdout
    kinds = {tuple(line.split("\t")[1:3]) for line in two.splitlines()}
    assert kinds <= {("quote", "SOL/USD"), ("trade", "BTC/USD")}


def test_unknown_type_is_a_usage_error(cli: Cli) -> None:
    result = cli("tail", "--type", "candles", env={"DAPR_HTTP_PORT": str(free_port())})
    assert result.exit_code == 2
    assert "candles" in result.stderr


def test_a_malformed_symbol_filter_is_a_usage_error(cli: Cli) -> None:
    result = cli("tail", "--symbol", "BTCUSD", env={"DAPR_HTTP_PORT": str(free_port())})
    assert result.exit_code == 2
    assert "--symbol: field 'symbol': 'BTCUSD' is not a BASE/QUOTE symbol" in result.stderr


def test_json_output_is_ndjson_with_frame_metadata(flowing: tuple[Cli, str]) -> None:
    cli, connection_id = flowing
    result = ok(cli("tail", "--count", "15", "--output", "json"))
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(docs) == 15
    for doc in docs:
        assert re.fullmatch(RFC3339, doc["received_at"])
        assert doc["frame"]["websocketId"] == connection_id
        assert doc["frame"]["websocketUrl"].startswith("ws://")
        assert doc["message"]["T"] in {"t", "q", "o", "success", "subscription"}
    trades = [d["message"] for d in docs if d["message"]["T"] == "t"]
    assert trades and {"S", "p", "s", "t", "i"} <= set(trades[0])


def test_duration_ends_with_exit_zero(flowing: tuple[Cli, str]) -> None:
    cli, _ = flowing
    result = ok(cli("tail", "--duration", "0.5"))
    assert result.stdout.endswith("\n")


def test_undecodable_frames_are_reported_not_fatal(
    flowing: tuple[Cli, str], embedded_with_feed: Any
) -> None:
    from alpaca_cli.config import DaprSettings

    cli, _ = flowing
    env = embedded_with_feed.env()
    settings = DaprSettings(
        http_port=int(env["DAPR_HTTP_PORT"]), grpc_port=int(env["DAPR_GRPC_PORT"])
    )
    import threading

    def inject() -> None:
        with PubsubClient(settings) as client:
            for _ in range(20):
                client.publish("alpaca-ticks", b"[{not json", type="frame")

    result_box: list[Any] = []
    runner = threading.Thread(
        target=lambda: result_box.append(cli("tail", "--type", "error", "--count", "1"))
    )
    runner.start()
    # tail subscribes quickly; injecting repeatedly until it has printed is bounded by count.
    while runner.is_alive():
        inject()
        runner.join(0.2)
    result = result_box[0]
    assert result.exit_code == 0, result.stderr
    assert "[decode-error]" in result.stdout


def test_sidecar_down_is_exit_3(cli: Cli) -> None:
    env = {
        "DAPR_HTTP_PORT": str(free_port()),
        "DAPR_GRPC_PORT": str(free_port()),
        "DAPR_HEALTH_TIMEOUT": "0.5",
    }
    result = cli("tail", "--count", "1", env=env)
    assert result.exit_code == 3


def _spawn_tail(cli: Cli, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(cli.env)
    return subprocess.Popen(
        [sys.executable, "-m", "alpaca_cli", "tail", *args],
        cwd=cli.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_stderr(proc: subprocess.Popen[bytes], text: bytes) -> bytes:
    assert proc.stderr is not None
    seen = b""
    while text not in seen:
        line = proc.stderr.readline()
        assert line, seen
        seen += line
    return seen


def test_sigterm_flushes_buffered_lines_without_pythonunbuffered(
    flowing: tuple[Cli, str], embedded_with_feed: Any
) -> None:
    cli, _ = flowing
    proc = _spawn_tail(cli)
    try:
        _wait_for_stderr(proc, b"Tailing topic")
        # Let data arrive: a streaming subscription of our own sees the same frames.
        from alpaca_cli.config import DaprSettings

        env = embedded_with_feed.env()  # the test's own look at the topic: always the sidecar
        settings = DaprSettings(
            http_port=int(env["DAPR_HTTP_PORT"]), grpc_port=int(env["DAPR_GRPC_PORT"])
        )
        with PubsubClient(settings) as client, client.subscribe("alpaca-ticks") as sub:
            for _ in range(5):
                assert sub.get(timeout=10) is not None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines = out.decode().splitlines(keepends=True)
    assert lines, err
    assert all(line.endswith("\n") and "\t" in line for line in lines)
    assert b"Traceback" not in err


def test_a_reader_closing_the_pipe_is_exit_zero(flowing: tuple[Cli, str]) -> None:
    cli, _ = flowing
    proc = _spawn_tail(cli)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # like `| head -1`
        assert first.endswith(b"\n")
        proc.stdout.close()
        proc.wait(timeout=20)
        err = proc.stderr.read() if proc.stderr else b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err


# -- the topic consumer itself (no I/O: TopicStream.process) --------------------------------------


def _stream() -> Any:
    from alpaca_cli.stream import TopicStream

    return TopicStream(PubsubClient.__new__(PubsubClient), "unused")


def test_stream_decodes_flat_and_envelope_frames_and_keeps_books() -> None:
    import base64

    import orjson

    stream = _stream()
    snapshot = (
        b'[{"T":"o","S":"BTC/USD","t":"2024-01-01T00:00:00Z","r":true,'
        b'"b":[{"p":100,"s":1},{"p":99,"s":2}],"a":[{"p":101,"s":1}]}]'
    )
    item = first = stream.process(snapshot, {"websocketId": "c1"}, "e1", 5)
    assert item.error is None and item.meta.websocket_id == "c1" and item.received_ns == 5
    delta = b'[{"T":"o","S":"BTC/USD","t":"2024-01-01T00:00:01Z","b":[{"p":100,"s":0}],"a":[]}]'
    envelope = orjson.dumps({"WebSocketId": "c1", "Payload": base64.b64encode(delta).decode()})
    item = stream.process(envelope, {})
    assert item.meta.envelope and len(item.messages) == 1
    book = stream.books["BTC/USD"]
    assert book.best_bid == (99.0, 2.0) and book.best_ask == (101.0, 1.0) and book.valid
    assert [m.T for m in first.messages + item.messages] == ["o", "o"]


def test_stream_counts_decode_errors_as_data() -> None:
    stream = _stream()
    bad = stream.process(b"[{broken", {})
    assert bad.messages == [] and bad.error
    broken_envelope = stream.process(b'{"Payload":"!!"}', {})
    assert broken_envelope.error
    good = stream.process(b'[{"T":"success","msg":"connected"}]', {})
    assert good.error is None
    # The tail's result counts them as it sees them: three frames, two undecodable.
    from alpaca_cli.steps.tail import TailResult

    result = TailResult(topic="unused")
    for seen in (bad, broken_envelope, good):
        result.saw(seen)
    assert (result.frames, result.messages, result.decode_errors) == (3, 1, 2)


def _json_lines(payload: bytes, **filters: Any) -> list[bytes]:
    from alpaca_cli.alpaca.book import Books
    from alpaca_cli.alpaca.codec import decode
    from alpaca_cli.platform.frames import FrameMeta
    from alpaca_cli.steps.tail import make_formatter
    from alpaca_cli.stream import StreamItem

    fmt = make_formatter(Books(), json_lines=True, **filters)
    meta = FrameMeta(websocket_id="c1", timestamp="2024-01-01T00:00:00.5Z")
    return fmt(StreamItem(1_704_067_200_000_000_000, meta, payload, decode(payload)))


def test_json_lines_carry_each_message_as_it_arrived() -> None:
    # Wire bytes kept as sent: "1.50" is not rewritten as 1.5, nor the escape as the letter.
    trade = b'{"T":"t","S":"BTC/USD","p":1.50,"s":2,"t":"2024-01-01T00:00:00.1Z","i":7}'
    quote = (
        b'{"T":"q", "S":"ETH/USD","bp":1,"bs":1,"ap":2,"as":1,'
        b'"t":"2024-01-01T00:00:00.2Z","x":"caf\\u00e9"}'
    )
    lines = _json_lines(b"[" + trade + b"," + quote + b"]")
    head = b'{"received_at":"2024-01-01T00:00:00Z","frame":{"websocketId":"c1",'
    head += b'"timestamp":"2024-01-01T00:00:00.5Z"},"message":'
    assert lines == [head + trade + b"}\n", head + quote + b"}\n"]
    assert json.loads(lines[1])["message"]["x"] == "café"


def test_json_lines_of_a_pretty_printed_frame_stay_one_per_line() -> None:
    frame = (
        b'[\n  {"T": "t", "S": "BTC/USD", "p": 1, "s": 2, "t": "2024-01-01T00:00:00Z", "i": 1},\n'
        b'  {"T": "success", "msg": "connected"}\n]'
    )
    lines = _json_lines(frame)
    assert [line.count(b"\n") for line in lines] == [1, 1]
    docs = [json.loads(line) for line in lines]
    assert [d["message"]["T"] for d in docs] == ["t", "success"]
    assert docs[0]["message"]["p"] == 1 and docs[1]["message"]["msg"] == "connected"


def test_json_lines_filter_by_symbol_and_type_on_wire_bytes() -> None:
    a = b'{"T":"t","S":"BTC/USD","p":1,"s":2,"t":"2024-01-01T00:00:00Z","i":1}'
    b = b'{"T":"t","S":"ETH/USD","p":1,"s":2,"t":"2024-01-01T00:00:00Z","i":2}'
    c = b'{"T":"success","msg":"connected"}'
    frame = b"[" + b",".join((a, b, c)) + b"]"
    kept = _json_lines(frame, symbols=frozenset({"ETH/USD"}))
    assert [line.split(b'"message":', 1)[1] for line in kept] == [b + b"}\n", c + b"}\n"]
    only_trades = _json_lines(frame, types=frozenset({"t"}))
    assert [json.loads(line)["message"]["i"] for line in only_trades] == [1, 2]
