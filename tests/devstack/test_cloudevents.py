"""How the sidecar wraps a publish into a CloudEvent (pure rules, no transport)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from alpaca_cli.devstack.broker import CloudEvent
from alpaca_cli.devstack.cloudevents import (
    CloudEventError,
    data_survives,
    event_from_attributes,
    event_from_publish,
    has_expired,
    marshal_json,
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
    # daprd fills in source, type and specversion, but never invents an id or a content type.
    assert (ev.id, ev.datacontenttype) == ("", "")
    assert (ev.source, ev.type, ev.specversion) == ("Dapr", "com.dapr.event.sent", "1.0")
    assert ev.data == b"[1,2]"
    assert ev.extensions["time"].endswith("Z")
    assert TRACEPARENT.match(ev.extensions["traceparent"])


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
        ("application/vnd.api+json", False),
        ("application/problem+json", False),
        ("", False),
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


NOON = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


class TestMarshalJson:
    def test_compact_sorted_and_html_characters_escaped_as_go_does(self) -> None:
        raw = b'{ "z": "a<b>&c", "a": {"y": 1, "b": [1, 2.5]} }'
        assert marshal_json(raw) == b'{"a":{"b":[1,2.5],"y":1},"z":"a\\u003cb\\u003e\\u0026c"}'

    def test_line_separators_are_escaped_too(self) -> None:
        assert marshal_json('"\u2028\u2029"'.encode()) == b'"\\u2028\\u2029"'

    def test_other_non_ascii_text_keeps_every_escape(self) -> None:
        raw = '{"a":"caf\u00e9 & \u2029 <"}'.encode()
        assert marshal_json(raw) == '{"a":"caf\u00e9 \\u0026 \\u2029 \\u003c"}'.encode()

    def test_values_survive_even_where_bytes_do_not(self) -> None:
        raw = b'[{"T":"t","S":"BTC/USD","p":95000.10,"i":3447222699101865076,"s":0.000022}]'
        assert marshal_json(raw) != raw
        assert orjson.loads(marshal_json(raw)) == orjson.loads(raw)

    def test_invalid_json_is_kept_as_it_came(self) -> None:
        assert marshal_json(b"{not json") == b"{not json"

    def test_a_plain_json_publish_is_re_marshalled(self) -> None:
        assert publish(b'{"b": 1, "a": 2}', "application/json").data == b'{"a":2,"b":1}'
        assert publish(b'{"b": 1}', "text/plain").data == b'{"b": 1}', "only JSON is touched"


class TestMetadata:
    def test_trace_overrides_from_cloudevent_metadata(self) -> None:
        trace = "00-" + "3" * 32 + "-" + "4" * 16 + "-01"
        ev = publish(
            b"x",
            **{"cloudevent.traceparent": trace, "cloudevent.tracestate": "a=b",
               "cloudevent.source": "src"},
        )  # fmt: skip
        assert (ev.extensions["traceparent"], ev.extensions["traceid"]) == (trace, trace)
        assert (ev.extensions["tracestate"], ev.source) == ("a=b", "src")

    def test_ttl_sets_expiration_in_whole_seconds(self) -> None:
        ev = event_from_publish(
            pubsub="pubsub", topic="t", data=b"x", content_type="text/plain",
            metadata={"ttlInSeconds": "30"}, app_id="app", now=NOON,
        )  # fmt: skip
        assert ev.extensions["expiration"] == "2026-03-01T12:00:30Z"
        assert not has_expired(ev, NOON + timedelta(seconds=29))
        assert has_expired(ev, NOON + timedelta(seconds=31))

    @pytest.mark.parametrize("ttl", ["soon", "-5"])
    def test_an_unusable_ttl_is_ignored_as_daprd_ignores_it(self, ttl: str) -> None:
        assert "expiration" not in publish(b"x", ttlInSeconds=ttl).extensions

    def test_a_passthrough_gets_an_expiration_too(self) -> None:
        doc = {"id": "1", "datacontenttype": "text/plain", "data": "x"}
        ev = event_from_publish(
            pubsub="pubsub", topic="t", data=orjson.dumps(doc),
            content_type="application/cloudevents+json", metadata={"ttlInSeconds": "1"},
            app_id="app", now=NOON,
        )  # fmt: skip
        assert ev.extensions["expiration"] == "2026-03-01T12:00:01Z"

    def test_an_event_without_a_parsable_expiration_never_expires(self) -> None:
        for value in (None, "", "tomorrow", "2026-03-01T12:00:00"):
            event = CloudEvent(id="1", source="s", type="t", topic="t")
            if value is not None:
                event.extensions["expiration"] = value
            assert not has_expired(event, NOON + timedelta(days=365))


class TestPassthrough:
    def test_the_publishers_trace_attributes_are_kept_and_time_added(self) -> None:
        trace = "00-" + "5" * 32 + "-" + "6" * 16 + "-01"
        doc = {"id": "1", "traceparent": trace, "traceid": trace, "tracestate": "x=y"}
        ev = publish(orjson.dumps(doc), "application/cloudevents+json")
        assert (ev.extensions["traceparent"], ev.extensions["traceid"]) == (trace, trace)
        assert ev.extensions["tracestate"] == "x=y"
        assert ev.extensions["time"].endswith("Z")

    def test_the_publishers_own_time_is_kept(self) -> None:
        doc = {"id": "1", "time": "2020-01-01T00:00:00Z"}
        ev = publish(orjson.dumps(doc), "application/cloudevents+json")
        assert ev.extensions["time"] == "2020-01-01T00:00:00Z"

    def test_json_data_of_a_passthrough_is_marshalled_like_daprd(self) -> None:
        doc = {"datacontenttype": "application/json", "data": {"b": "<", "a": 1}}
        ev = publish(orjson.dumps(doc), "application/cloudevents+json")
        assert ev.data == b'{"a":1,"b":"\\u003c"}'


def test_attributes_go_through_the_passthrough_rules() -> None:
    """The embedded WSM's path: parsed attributes plus raw data bytes, no JSON document."""
    ev = event_from_attributes(
        pubsub="pubsub",
        topic="frames",
        attributes={
            "id": "c-1",
            "source": "websocketmanager/w",
            "type": "frame",
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "websocketId": "c",
        },
        data=b'[{"T":"t", "S":"BTC/USD"}]',
        now=NOON,
    )
    assert (ev.id, ev.source, ev.type, ev.topic) == ("c-1", "websocketmanager/w", "frame", "frames")
    assert ev.data == b'[{"S":"BTC/USD","T":"t"}]'
    assert ev.extensions["websocketId"] == "c"
    assert ev.extensions["time"] == "2026-03-01T12:00:00.250000Z"
    assert TRACEPARENT.match(ev.extensions["traceparent"])
    assert ev.extensions["traceid"] == ev.extensions["traceparent"]
    binary = event_from_attributes(
        pubsub="pubsub",
        topic="frames",
        attributes={"id": "c-2", "datacontenttype": "application/octet-stream"},
        data=b"\x91\x80",
    )
    assert binary.data == b"\x91\x80", "binary data is never re-marshalled"
