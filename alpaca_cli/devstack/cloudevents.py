"""How a Dapr sidecar turns a publish request into a CloudEvent, and what a subscriber receives.

Pure functions (no gRPC, no sockets) following the runtime's rules as described in
``spec/dapr-pubsub.md`` and the envelope code of ``dapr/components-contrib``
(``pubsub/envelope.go``) and ``dapr/dapr`` (``pkg/runtime/pubsub``):

* A plain publish is wrapped in a sidecar-made envelope: a new ``id``, ``source`` = the app id,
  ``type`` ``com.dapr.event.sent``, ``specversion`` 1.0, ``datacontenttype`` (``text/plain``
  when none was given), plus ``time``, ``traceid``, ``traceparent`` and ``tracestate``.
  Publish metadata ``cloudevent.id`` / ``.source`` / ``.type`` / ``.traceid`` /
  ``.traceparent`` / ``.tracestate`` override those attributes (:data:`METADATA_OVERRIDES`).
* ``application/cloudevents+json`` data is the whole envelope: it passes through with its own
  ``id``, ``type``, ``source``, trace attributes and extensions (``correlationid`` ...); the
  sidecar sets ``topic`` and ``pubsubname``, adds ``time`` and the trace attributes the
  publisher left out, fills in ``source`` (``Dapr``), ``type`` and ``specversion``, and leaves
  a missing ``id`` or ``datacontenttype`` missing (empty here), as daprd does.
* JSON data (``application/json``) is parsed and re-marshalled the way Go's ``encoding/json``
  writes it (:func:`marshal_json`): compact, object keys sorted, ``<``, ``>``, ``&``, U+2028 and
  U+2029 escaped. Nobody downstream may rely on byte equality with what was published.
* ``ttlInSeconds`` publish metadata sets ``expiration`` (RFC 3339, seconds); an event past it
  is not delivered (:func:`has_expired`).
* Only some content types keep their data on the way to a gRPC or streaming subscriber
  (:func:`data_survives`); others, ``application/*+json`` included, arrive with empty data.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from alpaca_cli.devstack.broker import CloudEvent

__all__ = [
    "CLOUDEVENTS_JSON",
    "DEFAULT_CONTENT_TYPE",
    "DEFAULT_PASSTHROUGH_SOURCE",
    "METADATA_OVERRIDES",
    "SIDECAR_EVENT_TYPE",
    "TTL_METADATA",
    "CloudEventError",
    "data_survives",
    "event_from_attributes",
    "event_from_publish",
    "has_expired",
    "marshal_json",
    "media_type",
    "new_traceparent",
]

SIDECAR_EVENT_TYPE = "com.dapr.event.sent"
DEFAULT_CONTENT_TYPE = "text/plain"
"""What the sidecar calls data published without a content type."""
DEFAULT_PASSTHROUGH_SOURCE = "Dapr"
"""The runtime's default ``source`` for a passed-through envelope that has none."""
CLOUDEVENTS_JSON = "application/cloudevents+json"
TTL_METADATA = "ttlInSeconds"
"""Publish metadata key of a message's time to live (``contrib_metadata.TryGetTTL``)."""

METADATA_OVERRIDES: tuple[str, ...] = (
    "id",
    "source",
    "type",
    "traceid",
    "traceparent",
    "tracestate",
)
"""Attributes a plain publish may set with ``cloudevent.<name>`` metadata (daprd's
``runtimePubsub.CloudEvent`` mapstructure tags)."""

_NAMED = frozenset(
    {"id", "source", "type", "specversion", "datacontenttype", "data", "data_base64"}
    | {"topic", "pubsubname"}
)
_NO_METADATA: Mapping[str, str] = {}

# Go's encoding/json escapes these inside strings (HTML safety and JavaScript line separators);
# orjson writes them raw. In orjson's output they can only occur inside strings.
_GO_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)
_ASCII_ESCAPES = tuple(e for e in _GO_ESCAPES if e[0].isascii())
"""The escapes that can match an ASCII output: the others need a non-ASCII byte."""


class CloudEventError(ValueError):
    """A ``application/cloudevents+json`` publish whose data is not a usable CloudEvent."""


@lru_cache(maxsize=256)
def media_type(content_type: str) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    return content_type.split(";", 1)[0].strip().lower()


@lru_cache(maxsize=256)
def _is_json(content_type: str) -> bool:
    """daprd's ``IsJSONContentType``: ``application/json`` only, not ``application/*+json``."""
    return media_type(content_type) == "application/json"


@lru_cache(maxsize=256)
def data_survives(content_type: str) -> bool:
    """Whether a gRPC/streaming subscriber receives the data of an event of this type.

    ``text/*``, ``application/json``, ``application/cloudevents+json``, ``application/xml`` and
    ``application/octet-stream`` do; anything else, ``application/*+json`` and no content type
    at all (a passthrough that named none) included, arrives with empty data, as from the real
    sidecar (``contenttype/utils.go``, ``GRPCEnvelopeFromSubscriptionMessage``).
    """
    mt = media_type(content_type)
    return (
        mt.startswith("text/")
        or mt in ("application/json", CLOUDEVENTS_JSON, "application/xml")
        or mt == "application/octet-stream"
    )


def marshal_json(data: bytes) -> bytes:
    """``data`` re-marshalled the way daprd's Go code writes JSON; unchanged if not JSON.

    Compact, object keys sorted (by code point, which is Go's byte order for UTF-8), and
    ``<``, ``>``, ``&``, U+2028, U+2029 escaped as ``\\u003c`` ... Invalid JSON is kept as it
    came, as daprd keeps it as a string. One difference, documented rather than hidden: daprd
    keeps each number's literal text (``UseNumber``), while this re-prints numbers in their
    shortest round-trip form; the values are equal for every number a float64 or an int64
    holds, which covers Alpaca's prices, sizes and trade ids.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    return _dump_go(value, data)


def _dump_go(value: Any, original: bytes = b"") -> bytes:
    try:
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits: keep the text rather than lose it
        return original
    # U+2028/U+2029 need a non-ASCII byte: an ASCII output (the usual one) skips their search,
    # which is a multi-byte scan costing as much as a tenth of the whole re-marshal.
    for raw, escaped in _ASCII_ESCAPES if out.isascii() else _GO_ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    return out


def new_traceparent() -> str:
    """A fresh, sampled W3C ``traceparent`` (the sidecar starts a trace per publish)."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def _rfc3339(now: datetime | None) -> str:
    moment = now if now is not None else datetime.now(UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _expiration(metadata: Mapping[str, str], now: datetime | None) -> str | None:
    """``expiration`` for ``ttlInSeconds`` metadata (``ApplyMetadata``), or None.

    daprd ignores a TTL it cannot parse, and formats the expiry with ``time.RFC3339``
    (whole seconds).
    """
    raw = metadata.get(TTL_METADATA)
    if raw is None:
        return None
    try:
        seconds = int(raw)
    except ValueError:
        return None
    if seconds < 0:
        return None
    moment = (now if now is not None else datetime.now(UTC)) + timedelta(seconds=seconds)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def has_expired(event: CloudEvent, now: datetime) -> bool:
    """True when ``event`` carries an ``expiration`` before ``now`` (``HasExpired``).

    An expiration that does not parse never expires, as in daprd.
    """
    raw = event.extensions.get("expiration")
    if not raw or not isinstance(raw, str):
        return False
    try:
        expiration = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return False
    if expiration.tzinfo is None:
        return False
    return expiration < now


def event_from_publish(
    *,
    pubsub: str,
    topic: str,
    data: bytes,
    content_type: str,
    metadata: Mapping[str, str],
    app_id: str,
    traceparent: str | None = None,
    tracestate: str = "",
    now: datetime | None = None,
) -> CloudEvent:
    """Build the CloudEvent a sidecar publishes for one ``PublishEvent`` request.

    Args:
        pubsub: component name (already validated).
        topic: topic name (already validated, non-empty).
        data: the request's data bytes.
        content_type: the request's ``data_content_type`` ("" when the client gave none).
        metadata: publish metadata (``cloudevent.*`` overrides, ``ttlInSeconds``).
        app_id: the sidecar's app id, the ``source`` of sidecar-made events.
        traceparent: the caller's W3C trace context, else a new one is started.
        tracestate: the caller's ``tracestate``.
        now: the publish time (``time`` and ``expiration``); the wall clock when None.

    Raises:
        CloudEventError: ``content_type`` is ``application/cloudevents+json`` and ``data`` is
            not a JSON object with usable attributes.
    """
    if media_type(content_type) == CLOUDEVENTS_JSON:
        return _passthrough(pubsub, topic, data, metadata, traceparent, tracestate, now)
    override = {
        name: metadata[f"cloudevent.{name}"]
        for name in METADATA_OVERRIDES
        if metadata.get(f"cloudevent.{name}")
    }
    trace = override.get("traceparent") or traceparent or new_traceparent()
    content_type = content_type or DEFAULT_CONTENT_TYPE
    extensions: dict[str, Any] = {
        "time": _rfc3339(now),
        "traceid": override.get("traceid") or trace,
        "traceparent": trace,
        "tracestate": override.get("tracestate") or tracestate,
    }
    expiration = _expiration(metadata, now)
    if expiration is not None:
        extensions["expiration"] = expiration
    return CloudEvent(
        id=override.get("id") or str(uuid.uuid4()),
        source=override.get("source") or app_id,
        type=override.get("type") or SIDECAR_EVENT_TYPE,
        topic=topic,
        pubsubname=pubsub,
        datacontenttype=content_type,
        data=marshal_json(data) if _is_json(content_type) else data,
        extensions=extensions,
    )


def event_from_attributes(
    *,
    pubsub: str,
    topic: str,
    attributes: Mapping[str, Any],
    data: bytes,
    metadata: Mapping[str, str] = _NO_METADATA,
    traceparent: str | None = None,
    tracestate: str = "",
    now: datetime | None = None,
) -> CloudEvent:
    """The passthrough rules for an envelope whose attributes are already parsed.

    What the sidecar does with an ``application/cloudevents+json`` publish, minus the parsing:
    the embedded WebSocketManager publishes its frames through here, so they carry ``time``
    and the trace attributes like any event that went through a sidecar. ``data`` is the
    payload as bytes; JSON data (by ``attributes["datacontenttype"]``) is re-marshalled.

    Args:
        attributes: every CloudEvent attribute except ``data``/``data_base64`` (extensions
            included); ``topic`` and ``pubsubname`` in it are replaced.
        data: the payload bytes.
        metadata: publish metadata (``ttlInSeconds``).
        traceparent, tracestate, now: as for :func:`event_from_publish`.
    """
    content_type = attributes.get("datacontenttype") or ""
    return _envelope(
        pubsub,
        topic,
        attributes,
        marshal_json(data) if _is_json(content_type) else data,
        metadata,
        traceparent,
        tracestate,
        now,
    )


def _envelope(
    pubsub: str,
    topic: str,
    doc: Mapping[str, Any],
    data: bytes,
    metadata: Mapping[str, str],
    traceparent: str | None,
    tracestate: str,
    now: datetime | None,
) -> CloudEvent:
    extensions: dict[str, Any] = {k: v for k, v in doc.items() if k not in _NAMED}
    if "time" not in extensions:
        extensions["time"] = _rfc3339(now)
    # The publisher's own trace context wins; the sidecar's fills the gaps.
    if not extensions.get("traceparent"):
        extensions["traceparent"] = traceparent or extensions.get("traceid") or new_traceparent()
    if not extensions.get("traceid"):
        extensions["traceid"] = extensions["traceparent"]
    if "tracestate" not in extensions:
        extensions["tracestate"] = tracestate
    expiration = _expiration(metadata, now)
    if expiration is not None:
        extensions["expiration"] = expiration
    return CloudEvent(
        id=doc.get("id") or "",
        source=doc.get("source") or DEFAULT_PASSTHROUGH_SOURCE,
        type=doc.get("type") or SIDECAR_EVENT_TYPE,
        topic=topic,
        pubsubname=pubsub,
        specversion=doc.get("specversion") or "1.0",
        datacontenttype=doc.get("datacontenttype") or "",
        data=data,
        extensions=extensions,
    )


def _passthrough(
    pubsub: str,
    topic: str,
    raw: bytes,
    metadata: Mapping[str, str],
    traceparent: str | None,
    tracestate: str,
    now: datetime | None,
) -> CloudEvent:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CloudEventError(f"data is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CloudEventError("data is not a JSON object")
    for name in ("id", "source", "type", "specversion", "datacontenttype"):
        value = doc.get(name)
        if value is not None and not isinstance(value, str):
            raise CloudEventError(f"attribute {name!r} must be a string")
    data = _data_bytes(doc, doc.get("datacontenttype") or "")
    return _envelope(pubsub, topic, doc, data, metadata, traceparent, tracestate, now)


def _data_bytes(doc: dict[str, Any], content_type: str) -> bytes:
    """The payload of a CloudEvent in JSON format, as the bytes a subscriber receives."""
    if "data_base64" in doc:
        encoded = doc["data_base64"]
        if not isinstance(encoded, str):
            raise CloudEventError("data_base64 must be a string")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise CloudEventError(f"data_base64 is not base64: {exc}") from exc
    if "data" not in doc or doc["data"] is None:
        return b""
    value = doc["data"]
    if isinstance(value, str) and not _is_json(content_type):
        return value.encode()
    return _dump_go(value)
