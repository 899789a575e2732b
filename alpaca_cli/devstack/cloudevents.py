"""How a Dapr sidecar turns a publish request into a CloudEvent, and what a subscriber receives.

Pure functions (no gRPC, no sockets) following the runtime's rules as described in
``spec/dapr-pubsub.md`` and Dapr's ``pubsub`` envelope code:

* A plain publish is wrapped in a sidecar-made envelope: a new ``id``, ``source`` = the app id,
  ``type`` ``com.dapr.event.sent``, ``specversion`` 1.0, ``datacontenttype`` (``text/plain``
  when none was given), plus ``time``, ``traceid``, ``traceparent`` and ``tracestate``.
  Publish metadata ``cloudevent.id`` / ``cloudevent.source`` / ``cloudevent.type`` override
  the made-up attributes, as on the real sidecar.
* ``application/cloudevents+json`` data is the whole envelope: it passes through with its own
  ``id``, ``type``, ``source`` and extension attributes (``correlationid`` ...); the sidecar sets
  ``topic``, ``pubsubname`` and the trace attributes and fills in a missing ``id``, ``source``
  (``Dapr``), ``type`` and ``specversion``.
* Only some content types keep their data on the way to a gRPC or streaming subscriber
  (:func:`data_survives`); others arrive with empty data.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from alpaca_cli.devstack.broker import CloudEvent

__all__ = [
    "CLOUDEVENTS_JSON",
    "DEFAULT_CONTENT_TYPE",
    "DEFAULT_PASSTHROUGH_SOURCE",
    "SIDECAR_EVENT_TYPE",
    "CloudEventError",
    "data_survives",
    "event_from_publish",
    "media_type",
    "new_traceparent",
]

SIDECAR_EVENT_TYPE = "com.dapr.event.sent"
DEFAULT_CONTENT_TYPE = "text/plain"
"""What the sidecar calls data published without a content type."""
DEFAULT_PASSTHROUGH_SOURCE = "Dapr"
"""The runtime's default ``source`` for a passed-through envelope that has none."""
CLOUDEVENTS_JSON = "application/cloudevents+json"

_NAMED = frozenset(
    {"id", "source", "type", "specversion", "datacontenttype", "data", "data_base64"}
    | {"topic", "pubsubname"}
)


class CloudEventError(ValueError):
    """A ``application/cloudevents+json`` publish whose data is not a usable CloudEvent."""


@lru_cache(maxsize=256)
def media_type(content_type: str) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    return content_type.split(";", 1)[0].strip().lower()


@lru_cache(maxsize=256)
def _is_json(content_type: str) -> bool:
    mt = media_type(content_type)
    return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))


@lru_cache(maxsize=256)
def data_survives(content_type: str) -> bool:
    """Whether a gRPC/streaming subscriber receives the data of an event of this type.

    ``text/*``, ``application/json``, ``application/*+json`` (which includes
    ``application/cloudevents+json``), ``application/xml`` and ``application/octet-stream``
    do; anything else arrives with empty data, as from the real sidecar.
    """
    mt = media_type(content_type)
    return (
        mt.startswith("text/")
        or _is_json(mt)
        or mt in ("application/xml", "application/octet-stream")
    )


def new_traceparent() -> str:
    """A fresh, sampled W3C ``traceparent`` (the sidecar starts a trace per publish)."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_from_publish(
    *,
    pubsub: str,
    topic: str,
    data: bytes,
    content_type: str,
    metadata: dict[str, str],
    app_id: str,
    traceparent: str | None = None,
    tracestate: str = "",
) -> CloudEvent:
    """Build the CloudEvent a sidecar publishes for one ``PublishEvent`` request.

    Args:
        pubsub: component name (already validated).
        topic: topic name (already validated, non-empty).
        data: the request's data bytes.
        content_type: the request's ``data_content_type`` ("" when the client gave none).
        metadata: publish metadata (``cloudevent.*`` overrides).
        app_id: the sidecar's app id, the ``source`` of sidecar-made events.
        traceparent: the caller's W3C trace context, else a new one is started.
        tracestate: the caller's ``tracestate``.

    Raises:
        CloudEventError: ``content_type`` is ``application/cloudevents+json`` and ``data`` is
            not a JSON object with usable attributes.
    """
    trace = traceparent or new_traceparent()
    if media_type(content_type) == CLOUDEVENTS_JSON:
        return _passthrough(pubsub, topic, data, trace, tracestate)
    return CloudEvent(
        id=metadata.get("cloudevent.id") or str(uuid.uuid4()),
        source=metadata.get("cloudevent.source") or app_id,
        type=metadata.get("cloudevent.type") or SIDECAR_EVENT_TYPE,
        topic=topic,
        pubsubname=pubsub,
        datacontenttype=content_type or DEFAULT_CONTENT_TYPE,
        data=data,
        extensions={
            "time": _now(),
            "traceid": trace,
            "traceparent": trace,
            "tracestate": tracestate,
        },
    )


def _passthrough(pubsub: str, topic: str, raw: bytes, trace: str, tracestate: str) -> CloudEvent:
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
    content_type: str = doc.get("datacontenttype") or "application/json"
    extensions: dict[str, Any] = {k: v for k, v in doc.items() if k not in _NAMED}
    extensions["traceid"] = trace
    extensions["traceparent"] = trace
    extensions["tracestate"] = tracestate
    return CloudEvent(
        id=doc.get("id") or str(uuid.uuid4()),
        source=doc.get("source") or DEFAULT_PASSTHROUGH_SOURCE,
        type=doc.get("type") or SIDECAR_EVENT_TYPE,
        topic=topic,
        pubsubname=pubsub,
        specversion=doc.get("specversion") or "1.0",
        datacontenttype=content_type,
        data=_data_bytes(doc, content_type),
        extensions=extensions,
    )


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
    return orjson.dumps(value)
