"""Published-frame decoding: the flat format and the old base64 envelope."""

from __future__ import annotations

import base64

import orjson
import pytest

from alpaca_cli.platform.frames import FrameError, decode_frame

PAYLOAD = b'[{"T":"t","S":"BTC/USD","p":1.5,"s":2,"t":"2024-03-12T10:27:48.858228144Z","i":1}]'
EXT = {
    "websocketId": "conn-1",
    "websocketUrl": "wss://stream.data.alpaca.markets/v1beta3/crypto/us",
    "timestamp": "2026-01-01T00:00:00.5Z",
    "contentType": "application/json",
}


def test_flat_frame_keeps_the_payload_untouched_and_reads_the_extensions() -> None:
    frame = decode_frame(PAYLOAD, EXT, event_id="e1")
    assert frame.payload == PAYLOAD
    assert frame.meta.websocket_id == "conn-1"
    assert frame.meta.websocket_url == EXT["websocketUrl"]
    assert frame.meta.timestamp == EXT["timestamp"]
    assert frame.meta.content_type == "application/json"
    assert frame.meta.event_id == "e1"
    assert not frame.meta.envelope


def test_flat_frame_without_extensions_has_empty_metadata() -> None:
    frame = decode_frame(PAYLOAD)
    assert frame.payload == PAYLOAD
    assert frame.meta.websocket_id is None
    assert frame.meta.to_json() == {}


def test_flat_frame_accepts_lowercased_extension_names() -> None:
    # Some brokers lower-case CloudEvent attribute names (the spec allows only lowercase).
    frame = decode_frame(
        PAYLOAD, {"websocketid": "c", "websocketurl": "ws://x", "contenttype": "t"}
    )
    assert (frame.meta.websocket_id, frame.meta.websocket_url, frame.meta.content_type) == (
        "c",
        "ws://x",
        "t",
    )


def test_msgpack_payload_is_flat() -> None:
    packed = b"\x91\x82\xa1T\xa1t\xa1S\xa7BTC/USD"
    assert decode_frame(packed, EXT).payload == packed


def test_old_envelope_is_unwrapped() -> None:
    envelope = {
        "WebSocketId": "old-1",
        "WebSocketUrl": "wss://example/v1beta3/crypto/us",
        "Timestamp": "2025-05-01T00:00:00Z",
        "Payload": base64.b64encode(PAYLOAD).decode(),
        "ContentType": "application/json",
    }
    frame = decode_frame(orjson.dumps(envelope), {}, event_id="e2")
    assert frame.payload == PAYLOAD
    assert frame.meta.envelope
    assert frame.meta.websocket_id == "old-1"
    assert frame.meta.websocket_url == "wss://example/v1beta3/crypto/us"
    assert frame.meta.timestamp == "2025-05-01T00:00:00Z"
    assert frame.meta.to_json()["envelope"] is True


def test_envelope_in_camel_case_is_unwrapped_too() -> None:
    envelope = {"webSocketId": "c2", "payload": base64.b64encode(b"[]").decode()}
    frame = decode_frame(orjson.dumps(envelope))
    assert frame.payload == b"[]"
    assert frame.meta.websocket_id == "c2"


def test_envelope_with_broken_base64_is_a_frame_error() -> None:
    with pytest.raises(FrameError):
        decode_frame(b'{"Payload":"not base64!!"}')


def test_a_json_object_without_payload_is_passed_through_as_flat() -> None:
    data = b'{"T":"error","code":400,"msg":"invalid syntax","Xpayload":1}'
    frame = decode_frame(data, EXT)
    assert frame.payload == data
    assert not frame.meta.envelope
