"""The gateway over real HTTP (httpx): every method, discovery, schema, health and error forms."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alpaca_cli.devstack.schema import Field, Message, SchemaError, parse_message
from alpaca_cli.devstack.stack import EmbeddedPlatform, StackConfig, start_in_thread

from .conftest import ScriptedServer  # type: ignore[import-not-found]  # no package for mypy

pytestmark = pytest.mark.timeout(30)

CONTROLLER_URL = "embedded://websocketmanagercontroller"
DOTNET = "application/x-dotnet-dll"


@pytest.fixture
def platform() -> Iterator[EmbeddedPlatform]:
    with start_in_thread(StackConfig.ephemeral(feed=False)) as started:
        yield started


@pytest.fixture
def client(platform: EmbeddedPlatform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.env()["VIRTUFIN_API_URL"], timeout=10) as c:
        yield c


def invoke(client: httpx.Client, service: str, method: str, request: Any = None) -> dict[str, Any]:
    """One invoke-json call; asserts HTTP 200 and decodes response_data on success."""
    body = {"service": service, "method": method, "request_data": json.dumps(request or {})}
    response = client.post("/v1/gateway/invoke-json", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    if answer["success"]:
        assert answer["status"] == "OK"
        answer["data"] = json.loads(answer["response_data"])
    return answer


def create_worker(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "code_source": {"url": CONTROLLER_URL},
        "mime_type": DOTNET,
        "topics": ["command.websocketmanagercontroller"],
        "tags": {"made-by": "alpaca-md"},
    }
    request.update(overrides)
    request = {k: v for k, v in request.items() if v is not None}  # None: leave the field out
    return invoke(client, "workmanager", "CreateWorker", request)


def test_health_has_the_aspnet_shape(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Healthy"
    assert set(body["entries"]) == {"dapr", "grpc-channel-pool"}
    assert body["entries"]["dapr"]["status"] == "Healthy"
    assert body["totalDuration"].startswith("00:00:")


def test_health_is_unhealthy_when_the_sidecar_is_down(
    platform: EmbeddedPlatform, client: httpx.Client
) -> None:
    assert platform.loop_thread is not None
    platform.loop_thread.run(platform.stop_sidecar())
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "Unhealthy"
    assert response.json()["entries"]["dapr"]["status"] == "Unhealthy"
    ports = (platform.sidecar.http_port, platform.sidecar.grpc_port)
    platform.loop_thread.run(platform.start_sidecar())
    assert (platform.sidecar.http_port, platform.sidecar.grpc_port) == ports
    assert client.get("/health").json()["status"] == "Healthy"
    dapr_health = httpx.get(f"http://127.0.0.1:{ports[0]}/v1.0/healthz/outbound", timeout=10)
    assert dapr_health.is_success


def test_discovery_lists_both_services(client: httpx.Client) -> None:
    assert client.get("/v1/gateway/list-services").json() == {
        "services": ["workmanager", "websocketmanager"]
    }


@pytest.mark.parametrize(
    ("service", "method", "fields"),
    [
        ("workmanager", "CreateWorker", ["code_source", "mime_type", "topics", "tags", "config"]),
        ("workmanager", "StartWorker", ["id"]),
        ("workmanager", "StopWorker", ["id"]),
        ("workmanager", "DeleteWorker", ["id"]),
        ("workmanager", "ListWorkers", ["filters"]),
        ("websocketmanager", "Connect", ["url", "auto_reconnect", "tags"]),
        ("websocketmanager", "List", []),
        ("websocketmanager", "Disconnect", ["id"]),
        ("websocketmanager", "StartPublish", ["id", "topic"]),
        ("websocketmanager", "StopPublish", ["id"]),
        ("websocketmanager", "SendRaw", ["id", "message", "content_type"]),
        ("websocketmanager", "SetTag", ["id", "key", "value"]),
        ("websocketmanager", "SetTags", ["id", "tags"]),
        ("websocketmanager", "GetTag", ["id", "key"]),
        ("websocketmanager", "GetTags", ["id"]),
    ],
)
def test_schema_describes_every_method(
    client: httpx.Client, service: str, method: str, fields: list[str]
) -> None:
    response = client.get(f"/v1/grpc/{service}/schema/{method}", params={"type": "input"})
    assert response.status_code == 200
    described = response.json()["fields"]
    assert [f["name"] for f in described] == fields
    for f in described:
        assert {"name", "type", "isRepeated"} <= set(f)


def test_schema_of_create_worker_says_topics_is_a_repeated_string(client: httpx.Client) -> None:
    fields = client.get("/v1/grpc/workmanager/schema/CreateWorker?type=input").json()["fields"]
    topics = next(f for f in fields if f["name"] == "topics")
    assert (topics["type"], topics["isRepeated"]) == ("String", True)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/grpc/nosuch/schema/CreateWorker?type=input", 404),
        ("/v1/grpc/workmanager/schema/NoSuch?type=input", 404),
        ("/v1/grpc/workmanager/schema/CreateWorker?type=weird", 400),
    ],
)
def test_schema_errors(client: httpx.Client, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert "error" in response.json()


def test_worker_methods_round_trip(client: httpx.Client) -> None:
    created = create_worker(client)
    assert created["success"] is True
    wid = created["data"]["id"]
    listed = invoke(client, "workmanager", "ListWorkers")["data"]["workers"]
    [worker] = [w for w in listed if w["id"] == wid]
    assert worker["status"] == "STOPPED"
    assert worker["mimeType"] == DOTNET
    assert worker["topics"] == ["command.websocketmanagercontroller"]
    assert worker["tags"] == {"made-by": "alpaca-md"}
    assert "createdAt" in worker and "created_at" not in worker
    for method in ("StartWorker", "StartWorker"):
        assert invoke(client, "workmanager", method, {"id": wid})["data"] == {}
    listed = invoke(client, "workmanager", "ListWorkers")["data"]["workers"]
    assert listed[0]["status"] == "RUNNING"
    for method in ("StopWorker", "StopWorker", "StartWorker", "DeleteWorker"):
        assert invoke(client, "workmanager", method, {"id": wid})["success"] is True
    # protobuf JSON omits an empty repeated field
    assert invoke(client, "workmanager", "ListWorkers")["data"] == {}


def test_create_worker_accepts_inline_content_and_camel_case_names(client: httpx.Client) -> None:
    package = base64.b64encode(b"PK-not-checked-until-start").decode()
    created = create_worker(
        client, code_source={"content": package}, mime_type=None, mimeType=DOTNET
    )
    assert created["success"] is True, created


@pytest.mark.parametrize(
    ("overrides", "status", "fragment"),
    [
        pytest.param({"mime_type": "text/x-python"}, "NOT_FOUND", "Engine not found", id="mime"),
        pytest.param({"code_source": {"content": ""}}, "INVALID_ARGUMENT", "Code", id="empty"),
        pytest.param({"code_source": {"content": "***"}}, "INVALID_ARGUMENT", "base64", id="b64"),
        pytest.param({"code_source": {"url": "file:///x"}}, "INVALID_ARGUMENT", "http", id="file"),
        pytest.param(
            {"code_source": {"url": "https://x/w.zip", "content": "AA=="}},
            "INVALID_ARGUMENT",
            "not both",
            id="both",
        ),
        pytest.param({"topics": "one"}, "INVALID_ARGUMENT", "array", id="topics-string"),
        pytest.param({"topic": "one"}, "INVALID_ARGUMENT", "Unknown field: topic", id="topic"),
        pytest.param({"tags": {"k": 1}}, "INVALID_ARGUMENT", "string", id="tag-int"),
        pytest.param(
            {"tags": {str(i): "v" for i in range(51)}}, "INVALID_ARGUMENT", "tags", id="51-tags"
        ),
    ],
)
def test_create_worker_rejections_are_in_band(
    client: httpx.Client, overrides: dict[str, Any], status: str, fragment: str
) -> None:
    answer = create_worker(client, **overrides)
    assert answer["success"] is False
    assert answer["status"] == status
    assert fragment.lower() in answer["message"].lower()


def test_a_non_controller_package_fails_to_start_in_band(client: httpx.Client) -> None:
    package = base64.b64encode(b"definitely not a zip").decode()
    wid = create_worker(client, code_source={"content": package})["data"]["id"]
    answer = invoke(client, "workmanager", "StartWorker", {"id": wid})
    assert (answer["success"], answer["status"]) == (False, "FAILED_PRECONDITION")
    assert "Engine error" in answer["message"]


@pytest.mark.parametrize("method", ["StartWorker", "StopWorker", "DeleteWorker"])
def test_unknown_worker_is_not_found(client: httpx.Client, method: str) -> None:
    answer = invoke(client, "workmanager", method, {"id": "00000000-0000-0000-0000-000000000000"})
    assert (answer["success"], answer["status"]) == (False, "NOT_FOUND")


def test_websocketmanager_methods_against_a_live_upstream(
    client: httpx.Client, scripted_server: ScriptedServer
) -> None:
    connected = invoke(
        client, "websocketmanager", "Connect", {"url": scripted_server.url, "auto_reconnect": True}
    )
    assert connected["data"]["status"] == "CONNECTED"
    cid = connected["data"]["id"]
    [conn] = invoke(client, "websocketmanager", "List")["data"]["connections"]
    assert (conn["id"], conn["url"], conn["status"]) == (cid, scripted_server.url, "CONNECTED")
    assert "topic" not in conn
    started = invoke(client, "websocketmanager", "StartPublish", {"id": cid, "topic": "ticks"})
    assert started["success"] is True
    assert invoke(client, "websocketmanager", "List")["data"]["connections"][0]["topic"] == "ticks"
    message = base64.b64encode(b'{"action":"ping"}').decode()
    sent = invoke(
        client,
        "websocketmanager",
        "SendRaw",
        {"id": cid, "message": message, "content_type": "application/json"},
    )
    assert sent["success"] is True
    assert invoke(client, "websocketmanager", "StopPublish", {"id": cid})["success"] is True
    assert invoke(client, "websocketmanager", "Disconnect", {"id": cid})["success"] is True
    assert invoke(client, "websocketmanager", "List")["data"] == {}
    assert scripted_server.received[0] == ['{"action":"ping"}']


@pytest.mark.parametrize(
    ("method", "request_data", "status", "fragment"),
    [
        ("Disconnect", {"id": "nope"}, "NOT_FOUND", "Connection not found"),
        ("StartPublish", {"id": "nope", "topic": "t"}, "NOT_FOUND", "Connection not found"),
        ("StopPublish", {"id": "nope"}, "NOT_FOUND", "Connection not found"),
        ("SendRaw", {"id": "nope", "message": "e30="}, "NOT_FOUND", "Connection not found"),
        ("Connect", {"url": "http://x"}, "INVALID_ARGUMENT", "Invalid WebSocket URL"),
        # URLs that urllib cannot even split must not surface as INTERNAL
        ("Connect", {"url": "ws://[::1"}, "INVALID_ARGUMENT", "Invalid WebSocket URL"),
        ("Connect", {"url": "ws://127.0.0.1:99999/"}, "INVALID_ARGUMENT", "Invalid WebSocket URL"),
        ("Connect", {"url": "ws://127.0.0.1:9/"}, "UNAVAILABLE", "Failed to connect"),
        ("Connect", {"auto_reconnect": "yes"}, "INVALID_ARGUMENT", "true or false"),
    ],
)
def test_websocketmanager_errors_are_in_band(
    client: httpx.Client, method: str, request_data: Any, status: str, fragment: str
) -> None:
    answer = invoke(client, "websocketmanager", method, request_data)
    assert (answer["success"], answer["status"]) == (False, status)
    assert fragment in answer["message"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        pytest.param(
            {"method": "List", "request_data": "{}"}, "INVALID_ARGUMENT", "service", id="no-service"
        ),
        pytest.param({"service": "websocketmanager"}, "INVALID_ARGUMENT", "method", id="no-method"),
        pytest.param({"service": "billing", "method": "Pay"}, "NOT_FOUND", "billing", id="service"),
        pytest.param(
            {"service": "workmanager", "method": "Fly"}, "UNIMPLEMENTED", "Fly", id="method"
        ),
        pytest.param(
            {"service": "workmanager", "method": "ListWorkers", "request_data": {"a": 1}},
            "INVALID_ARGUMENT",
            "JSON string",
            id="object-data",
        ),
        pytest.param(
            {"service": "workmanager", "method": "ListWorkers", "request_data": "{nope"},
            "INVALID_ARGUMENT",
            "not valid JSON",
            id="bad-data",
        ),
        pytest.param(
            {"service": "workmanager", "method": "StartWorker", "request_data": "[1]"},
            "INVALID_ARGUMENT",
            "object",
            id="array-data",
        ),
    ],
)
def test_malformed_invocations_are_in_band(
    client: httpx.Client, body: dict[str, Any], status: str, fragment: str
) -> None:
    response = client.post("/v1/gateway/invoke-json", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["success"], answer["status"]) == (False, status)
    assert fragment in answer["message"]


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b""])
def test_a_body_that_is_not_a_json_object_is_http_400(client: httpx.Client, raw: bytes) -> None:
    response = client.post(
        "/v1/gateway/invoke-json", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_api_key_is_enforced_except_on_health() -> None:
    config = StackConfig.ephemeral(feed=False, api_key="s3cret-key")
    with (
        start_in_thread(config) as platform,
        httpx.Client(base_url=platform.gateway_url, timeout=10) as client,
    ):
        assert platform.env()["VIRTUFIN_API_KEY"] == "s3cret-key"
        assert client.get("/health").status_code == 200
        body = {"service": "workmanager", "method": "ListWorkers", "request_data": "{}"}
        for headers in ({}, {"x-api-key": "wrong"}):
            denied = client.post("/v1/gateway/invoke-json", json=body, headers=headers)
            assert denied.status_code == 401
            assert "s3cret" not in denied.text
        assert client.get("/v1/gateway/list-services").status_code == 401
        ok = client.post("/v1/gateway/invoke-json", json=body, headers={"x-api-key": "s3cret-key"})
        assert ok.status_code == 200 and ok.json()["success"] is True


def test_legacy_platform_takes_topic_and_rejects_topics() -> None:
    with (
        start_in_thread(StackConfig.ephemeral(feed=False, legacy=True)) as platform,
        httpx.Client(base_url=platform.gateway_url, timeout=10) as client,
    ):
        fields = client.get("/v1/grpc/workmanager/schema/CreateWorker?type=input").json()["fields"]
        names = [f["name"] for f in fields]
        assert "topic" in names and "group" in names and "topics" not in names
        rejected = create_worker(client)
        assert (rejected["success"], rejected["status"]) == (False, "INVALID_ARGUMENT")
        assert "topics" in rejected["message"]
        accepted = create_worker(
            client, topics=None, topic="commands.websocketmanager-controller", group="g"
        )
        assert accepted["success"] is True, accepted
        del_topics = invoke(client, "workmanager", "ListWorkers")["data"]["workers"]
        assert del_topics[0]["topics"] == ["commands.websocketmanager-controller"]


# -- protobuf-JSON request parsing (the schema table the gateway enforces) -----------------------

SEND_RAW_MESSAGE = Message(
    "websocketmanager.SendRawRequest",
    (Field("id", 1, "String"), Field("message", 2, "Bytes"), Field("content_type", 3, "String")),
)
SEND_RAW_NAMES = {"id", "message", "content_type", "contentType"}


@given(payload=st.binary(max_size=256), urlsafe=st.booleans(), padded=st.booleans())
def test_bytes_fields_accept_every_base64_spelling(
    payload: bytes, urlsafe: bool, padded: bool
) -> None:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(payload).decode()
    if not padded:
        text = text.rstrip("=")
    parsed = parse_message(SEND_RAW_MESSAGE, {"id": "x", "message": text})
    assert parsed == {"id": "x", "message": payload}


@given(key=st.text(min_size=1, max_size=20).filter(lambda k: k not in SEND_RAW_NAMES))
def test_unknown_fields_are_rejected_by_name(key: str) -> None:
    with pytest.raises(SchemaError) as exc:
        parse_message(SEND_RAW_MESSAGE, {key: "v"})
    assert key in str(exc.value)


@given(
    value=st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.text()))
)
def test_a_string_field_rejects_other_json_types(value: Any) -> None:
    with pytest.raises(SchemaError):
        parse_message(SEND_RAW_MESSAGE, {"id": value})
