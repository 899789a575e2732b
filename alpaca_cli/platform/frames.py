"""Published WebSocket frames: what the WebSocketManager puts on a topic, back to payload bytes.

The WSM publishes every frame it receives as one CloudEvent (``spec/virtufin-platform.md``,
"Published frames"). Two generations exist and both must be read:

* **flat** (current): the CloudEvent ``data`` *is* the raw WebSocket payload (for Alpaca a JSON
  array, or msgpack bytes); the extension attributes ``websocketId``, ``websocketUrl``,
  ``timestamp`` and ``contentType`` carry the metadata.
* **envelope** (older builds): ``data`` is a JSON object
  ``{WebSocketId, WebSocketUrl, Timestamp, Payload (base64), ContentType}``.

An Alpaca payload is always a JSON *array* (or msgpack), so a ``data`` that starts with ``{`` and
holds a ``Payload`` key can only be the envelope; anything else is taken as flat. Decoding is on
the hot path of ``tail``: the flat case costs a few dict lookups and never parses the payload.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Frame", "FrameError", "FrameMeta", "decode_frame"]


class FrameError(ValueError):
    """The event looks like an envelope but its ``Payload`` is not usable base64."""


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """Where a frame came from, as the WSM described it (fields are ``None`` when absent)."""

    websocket_id: str | None = None
    websocket_url: str | None = None
    timestamp: str | None = None
    """The WSM's receive time, as it sent it (RFC 3339 text; not parsed on the hot path)."""
    content_type: str | None = None
    event_id: str | None = None
    envelope: bool = False
    """True when the frame came in the old base64 envelope."""

    def to_json(self) -> dict[str, Any]:
        """camelCase keys, as on the wire; absent values omitted."""
        wire = {
            "websocketId": self.websocket_id,
            "websocketUrl": self.websocket_url,
            "timestamp": self.timestamp,
            "contentType": self.content_type,
            "eventId": self.event_id,
        }
        out: dict[str, Any] = {key: value for key, value in wire.items() if value is not None}
        if self.envelope:
            out["envelope"] = True
        return out


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket payload and its metadata."""

    payload: bytes
    meta: FrameMeta


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _pick(doc: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in doc:
            return doc[name]
    return None


def decode_frame(
    data: bytes,
    extensions: Mapping[str, Any] | None = None,
    *,
    event_id: str | None = None,
) -> Frame:
    """Turn one published CloudEvent (its ``data`` and extensions) into a :class:`Frame`.

    Args:
        data: the CloudEvent's raw data bytes.
        extensions: its extension attributes (``websocketId``...), any case style.
        event_id: the CloudEvent id, kept in the metadata for NDJSON output.

    Raises:
        FrameError: an envelope whose ``Payload`` is not base64.
    """
    ext = extensions or {}
    if data[:1] == b"{" and b'ayload"' in data:
        envelope = _envelope(data)
        if envelope is not None:
            payload, meta = envelope
            return Frame(
                payload,
                FrameMeta(
                    websocket_id=_text(_pick(meta, "WebSocketId", "webSocketId", "websocketId"))
                    or _text(_pick(ext, "websocketId", "websocket_id")),
                    websocket_url=_text(_pick(meta, "WebSocketUrl", "webSocketUrl", "websocketUrl"))
                    or _text(_pick(ext, "websocketUrl", "websocket_url")),
                    timestamp=_text(_pick(meta, "Timestamp", "timestamp")),
                    content_type=_text(_pick(meta, "ContentType", "contentType")),
                    event_id=event_id,
                    envelope=True,
                ),
            )
    return Frame(
        data,
        FrameMeta(
            websocket_id=_text(_pick(ext, "websocketId", "websocketid", "websocket_id")),
            websocket_url=_text(_pick(ext, "websocketUrl", "websocketurl", "websocket_url")),
            timestamp=_text(ext.get("timestamp")),
            content_type=_text(_pick(ext, "contentType", "contenttype", "content_type")),
            event_id=event_id,
        ),
    )


def _envelope(data: bytes) -> tuple[bytes, dict[str, Any]] | None:
    """``(payload, envelope)`` when ``data`` is the old envelope, else ``None``."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    encoded = _pick(doc, "Payload", "payload")
    if not isinstance(encoded, str):
        return None
    try:
        payload = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError("the frame envelope's Payload is not valid base64") from exc
    return payload, doc
