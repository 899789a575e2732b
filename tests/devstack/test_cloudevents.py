"""How the sidecar wraps a publish into a CloudEvent (pure rules, no transport)."""

from __future__ import annotations

import base64
import re

import orjson
import pytest

from alpaca_cli.devstack.cloudevents import (
    CloudEventError,
    data_survives,
    event_from_publish,
)

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")


def publish(data: bytes, content_type: str = "", **metadata: str):  # type: ignore[no-untyped-def]
    return event_from_publish(
        pubsub="pubsub",
        topic="t",
        data=data,
        content_type=content_type,
        metadata=metadata,
        app_id="app",
    )


def test_a_plain_publish_gets_a_sidecar_made_envelope() -> None:
    ev = publish(b'{"a":1}', "application/json")
    assert (ev.source, ev.type, ev.specversion) == ("app", "com.dapr.event.sent", "1.0")
    assert (ev.topic, ev.pubsubname, ev.datacontenttype) == ("t", "pubsub", "application/json")
    assert ev.data == b'{"a":1}'
    assert re.fullmatch(r"[0-9a-f-]{36}", ev.id)
    assert TRACEPARENT.match(ev.extensions["traceparent"])
    assert ev.extensions["traceid"] == ev.extensions["traceparent"]
    assert ev.extensions["time"].endswith("Z")
    assert publish(b"x").id != ev.id


def test_data_without_content_type_is_text_plain() -> None:
    assert publish(b"hello").datacontenttype == "text/plain"


def test_cloudevent_metadata_overrides_the_made_up_attributes() -> None:
    ev = publish(b"x", **{"cloudevent.id": "i1", "cloudevent.type": "my.type"})
    assert (ev.id, ev.type, ev.source) == ("i1", "my.type", "app")


def test_the_callers_trace_context_is_kept() -> None:
    trace = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    ev = event_from_publish(
        pubsub="pubsub",
        topic="t",
        data=b"",
        content_type="",
        metadata={},
        app_id="app",
        traceparent=trace,
        tracestate="k=v",
    )
    assert (ev.extensions["traceparent"], ev.extensions["tracestate"]) == (trace, "k=v")


def test_a_whole_cloudevent_passes_through_with_its_extensions() -> None:
    doc = {
        "id": "cmd-1",
        "source": "alpaca-md",
        "type": "com.example.command",
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "correlationid": "c-42",
        "replytopic": "replies",
        "topic": "ignored",
        "data": {"command": "list"},
    }
    ev = publish(orjson.dumps(doc), "application/cloudevents+json")
    assert (ev.id, ev.source, ev.type) == ("cmd-1", "alpaca-md", "com.example.command")
    assert ev.topic == "t"
    assert ev.datacontenttype == "application/json"
    assert orjson.loads(ev.data) == {"command": "list"}
    assert ev.extensions["correlationid"] == "c-42"
    assert ev.extensions["replytopic"] == "replies"
    assert "topic" not in ev.extensions
    assert TRACEPARENT.match(ev.extensions["traceparent"])


def test_a_passed_through_cloudevent_gets_missing_attributes_filled_in() -> None:
    ev = publish(b'{"data": [1, 2]}', "application/cloudevents+json; charset=utf-8")
    assert ev.id
    assert (ev.source, ev.type, ev.specversion) == ("Dapr", "com.dapr.event.sent", "1.0")
    assert (ev.datacontenttype, ev.data) == ("application/json", b"[1,2]")


@pytest.mark.parametrize(
    ("doc", "data"),
    [
        pytest.param({"datacontenttype": "text/plain", "data": "hi"}, b"hi", id="text"),
        pytest.param(
            {"datacontenttype": "application/octet-stream", "data_base64": "AAE="},
            b"\x00\x01",
            id="base64",
        ),
        pytest.param({"id": "x"}, b"", id="no-data"),
    ],
)
def test_passed_through_data_becomes_the_bytes_a_subscriber_gets(
    doc: dict[str, str], data: bytes
) -> None:
    assert publish(orjson.dumps(doc), "application/cloudevents+json").data == data


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[1]", id="not-object"),
        pytest.param(b'{"id": 5}', id="id-not-string"),
        pytest.param(orjson.dumps({"data_base64": "%%"}), id="bad-base64"),
    ],
)
def test_an_unusable_cloudevent_is_refused(body: bytes) -> None:
    with pytest.raises(CloudEventError):
        publish(body, "application/cloudevents+json")


@pytest.mark.parametrize(
    ("content_type", "survives"),
    [
        ("text/plain", True),
        ("text/csv", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/vnd.api+json", True),
        ("application/cloudevents+json", True),
        ("application/xml", True),
        ("application/octet-stream", True),
        ("application/msgpack", False),
        ("image/png", False),
    ],
)
def test_only_some_content_types_keep_their_data(content_type: str, survives: bool) -> None:
    assert data_survives(content_type) is survives


def test_base64_helper_roundtrip_matches_the_spec_encoding() -> None:
    raw = bytes(range(256))
    doc = {
        "datacontenttype": "application/octet-stream",
        "data_base64": base64.b64encode(raw).decode(),
    }
    assert publish(orjson.dumps(doc), "application/cloudevents+json").data == raw
